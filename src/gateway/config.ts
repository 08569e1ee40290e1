// The `gateway:` section of the daemon config and the serve flags that set
// it. The gateway serves the OCI distribution API in front of one upstream:
//
//   gateway:
//     listen: tcp://127.0.0.1:5080        # or unix:///run/bkcache/gateway.sock
//     upstream: registry.internal:5000/cache   # HOST[:PORT][/PREFIX], or `local` (the embedded store)
//     tls: { cert: gw.pem, key: gw.key }
//     imageManifestOnly: true             # store pushed cache indexes as image manifests (ECR)
//     secretFile: gateway.secret          # seals upload locations and gateway tokens; share it
//                                         # between daemons behind one load balancer
import { invalidArgument } from '../errors.js';
import { parseReferenceLoose } from '../oci/reference.js';

export interface GatewayConfig {
  /** tcp://HOST:PORT or unix:///path. */
  listen: string;
  /** "local", or HOST[:PORT][/PREFIX]. */
  upstream: string;
  tls?: { cert: string; key: string };
  imageManifestOnly: boolean;
  /** Key material for sealed upload locations and gateway tokens (at least 32 bytes). */
  secretFile?: string;
}

export const LOCAL_UPSTREAM = 'local';

export interface ParsedUpstream {
  kind: 'local' | 'registry';
  /** Registry name as in references ("127.0.0.1:5000", "docker.io"). */
  registry?: string;
  /** Repository prefix inside the registry ("" for none). */
  prefix: string;
}

const invalid = (msg: string) => invalidArgument(msg, { reason: 'invalid-config' });

/** `local` or HOST[:PORT][/PREFIX]; the prefix follows the repository grammar. */
export function parseUpstream(s: string): ParsedUpstream {
  if (s === LOCAL_UPSTREAM) return { kind: 'local', prefix: '' };
  const slash = s.indexOf('/');
  const host = slash < 0 ? s : s.slice(0, slash);
  const prefix = slash < 0 ? '' : s.slice(slash + 1).replace(/\/+$/, '');
  if (!/[.:]/.test(host) && host !== 'localhost') throw invalid(`gateway upstream ${JSON.stringify(s)}: want HOST[:PORT][/PREFIX] (a host has a '.' or a ':') or local`);
  // Validate with the reference grammar, on a placeholder repository when there is no prefix.
  try {
    const ref = parseReferenceLoose(`${host}/${prefix || 'x'}`);
    if (ref.registry !== host) throw new Error('bad host');
  } catch (err) {
    throw invalid(`gateway upstream ${JSON.stringify(s)}: ${(err as Error).message}`);
  }
  return { kind: 'registry', registry: host, prefix };
}

type Obj = Record<string, unknown>;

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || !v) throw invalid(`${where} must be a non-empty string`);
  return v;
}

/** Parses the `gateway:` mapping of a config file; `rel` resolves paths against the file. */
export function parseGatewayConfig(v: unknown, rel: (p: string) => string): GatewayConfig {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid('gateway must be a mapping');
  const known = ['listen', 'upstream', 'tls', 'imageManifestOnly', 'secretFile'];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw invalid(`gateway: unknown key ${JSON.stringify(k)} (known: ${known.join(', ')})`);
  const o = v as Obj;
  const out: GatewayConfig = { listen: str(o.listen, 'gateway.listen'), upstream: str(o.upstream, 'gateway.upstream'), imageManifestOnly: false };
  parseUpstream(out.upstream);
  if (o.tls !== undefined) {
    const t = o.tls as Obj;
    if (t === null || typeof t !== 'object' || Object.keys(t).some((k) => k !== 'cert' && k !== 'key')) throw invalid('gateway.tls must be { cert, key }');
    out.tls = { cert: rel(str(t.cert, 'gateway.tls.cert')), key: rel(str(t.key, 'gateway.tls.key')) };
  }
  if (o.imageManifestOnly !== undefined) {
    if (typeof o.imageManifestOnly !== 'boolean') throw invalid('gateway.imageManifestOnly must be true or false');
    out.imageManifestOnly = o.imageManifestOnly;
  }
  if (o.secretFile !== undefined) out.secretFile = rel(str(o.secretFile, 'gateway.secretFile'));
  return out;
}

/** `--gateway-addr` and `--gateway-upstream` on top of the file: both, or neither unless the file has a gateway. */
export function applyGatewayFlags(cur: GatewayConfig | undefined, addr: string | undefined, upstream: string | undefined): GatewayConfig | undefined {
  if (addr === undefined && upstream === undefined) return cur;
  const listen = addr ?? cur?.listen;
  const up = upstream ?? cur?.upstream;
  if (!listen || !up) throw invalid('--gateway-addr and --gateway-upstream go together (or set gateway.listen and gateway.upstream in --config)');
  parseUpstream(up);
  return { imageManifestOnly: false, ...cur, listen, upstream: up };
}
