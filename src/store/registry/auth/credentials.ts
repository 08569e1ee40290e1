// Credentials as the registry auth flows need them. Kept in one small type
// so the rest of the code can pass them around without ever formatting them:
// nothing here has a toString that reveals a secret.

export interface Credentials {
  username?: string;
  password?: string;
  /**
   * An OAuth2 refresh token ("identitytoken" in Docker's config.json, what
   * `docker login` stores for some registries). Exchanged at the token
   * endpoint with grant_type=refresh_token.
   */
  identityToken?: string;
  /** A ready bearer token, used as is (registry tokens given by CI systems). */
  registryToken?: string;
}

/** Looks up credentials for a registry host; undefined means anonymous. */
export type CredentialProvider = (host: string) => Promise<Credentials | undefined>;

export function hasBasic(c: Credentials | undefined): c is Credentials & { username: string; password: string } {
  return !!c && typeof c.username === 'string' && c.username !== '' && typeof c.password === 'string';
}

export function basicHeader(c: { username: string; password: string }): string {
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}

/** Whether any secret is present (so a failed 401 means "rejected", not "missing"). */
export function hasAny(c: Credentials | undefined): boolean {
  return !!c && !!(c.password || c.identityToken || c.registryToken);
}

/** A provider that always answers the same, or per host from a map. */
export function staticCredentials(creds: Credentials | Record<string, Credentials>): CredentialProvider {
  const isSingle = 'username' in creds || 'password' in creds || 'identityToken' in creds || 'registryToken' in creds;
  return async (host) => (isSingle ? (creds as Credentials) : (creds as Record<string, Credentials>)[host]);
}

/** Tries providers in order; the first that knows the host wins. */
export function chainCredentials(...providers: (CredentialProvider | undefined)[]): CredentialProvider {
  const list = providers.filter((p): p is CredentialProvider => !!p);
  return async (host) => {
    for (const p of list) {
      const c = await p(host);
      if (c) return c;
    }
    return undefined;
  };
}
