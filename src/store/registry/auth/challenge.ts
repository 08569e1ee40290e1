// WWW-Authenticate parsing (RFC 9110 §11.6.1, https://www.rfc-editor.org/rfc/rfc9110#field.www-authenticate).
// Registries answer 401 with e.g.
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"
// (https://distribution.github.io/distribution/spec/auth/token/), and may send
// several challenges in one header ("Basic realm=x, Bearer realm=y") or in
// several headers, so this is a real tokenizer, not a regex.

export interface Challenge {
  /** Lowercased scheme: "bearer", "basic", ... */
  scheme: string;
  /** Lowercased parameter names to values (quotes and escapes removed). */
  params: Record<string, string>;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Parses one or more WWW-Authenticate header values into challenges, in order. */
export function parseChallenges(headers: string | readonly string[] | undefined | null): Challenge[] {
  if (headers == null) return [];
  const values = typeof headers === 'string' ? [headers] : headers;
  const out: Challenge[] = [];
  // Loops, not push(...): a header can hold more challenges than a call takes arguments.
  for (const v of values) for (const c of parseOne(v)) out.push(c);
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  // Unquoted values should be tokens, but realms are URLs and some servers
  // leave them unquoted: take everything up to the next comma.
  const bare = () => {
    const start = i;
    while (i < s.length && s[i] !== ',') i++;
    return s.slice(start, i).trim();
  };
  const quoted = () => {
    // s[i] is the opening quote.
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end of input on malformed headers)
    return v;
  };

  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const name = token();
    if (!name) {
      // Unparseable byte: skip it rather than loop forever on hostile input.
      i++;
      continue;
    }
    skipWs();
    if (s[i] === '=') {
      // An auth-param (name=token or name="quoted"); one before any scheme
      // is malformed and dropped.
      i++;
      skipWs();
      const value = s[i] === '"' ? quoted() : bare();
      if (current) current.params[name.toLowerCase()] = value;
      continue;
    }
    // A new challenge starts with its scheme.
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
    // token68 form ("Negotiate abc123=="): a lone value, ended by ',' or the
    // end. Kept under the empty name; registries do not use it.
    skipWs();
    const t68 = /^([A-Za-z0-9\-._~+/]+=*)[ \t]*(?:,|$)/.exec(s.slice(i));
    if (t68) {
      current.params[''] = t68[1]!;
      i += t68[1]!.length;
    }
  }
  return out;
}

/** The scopes a Bearer challenge names (space-separated in one `scope` param). */
export function challengeScopes(ch: Challenge): string[] {
  const s = ch.params.scope;
  return s ? s.split(' ').filter(Boolean) : [];
}

/** RFC 6750 §3.1: the token lacks the access the request needs. */
export function isInsufficientScope(ch: Challenge | undefined): boolean {
  return ch?.params.error === 'insufficient_scope';
}

/**
 * Merges scopes of the form "repository:name:action,action": the same
 * resource's actions are united, so one token serves pull and push.
 * https://distribution.github.io/distribution/spec/auth/scope/
 */
export function mergeScopes(...lists: readonly (readonly string[])[]): string[] {
  const byResource = new Map<string, Set<string>>();
  const order: string[] = [];
  for (const list of lists) {
    for (const scope of list) {
      const i = scope.lastIndexOf(':');
      if (i < 0) {
        if (!byResource.has(scope)) order.push(scope);
        byResource.set(scope, byResource.get(scope) ?? new Set());
        continue;
      }
      const resource = scope.slice(0, i);
      let actions = byResource.get(resource);
      if (!actions) {
        actions = new Set();
        byResource.set(resource, actions);
        order.push(resource);
      }
      for (const a of scope.slice(i + 1).split(',')) if (a) actions.add(a);
    }
  }
  return order
    .sort()
    .map((r) => {
      const actions = [...(byResource.get(r) ?? [])].sort();
      return actions.length ? `${r}:${actions.join(',')}` : r;
    });
}

/** The scope string for a repository (distribution's resource scope grammar). */
export function repositoryScope(repository: string, ...actions: string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}
