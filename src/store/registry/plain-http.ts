// Which registries may fall back to plain HTTP, and what a TLS failure means
// for the user. Docker (registry/config.go: localhost and 127.0.0.0/8 are
// insecure registries by default) and containerd (docker resolver: plain
// HTTP fallback for localhost) try HTTPS first and use HTTP when the
// registry on the loopback interface does not speak TLS; bkcache does the
// same for localhost, 127.0.0.0/8 and ::1. Any other host stays HTTPS unless
// registry.insecure=true (or the daemon config's `insecure: true`) says so.
import { BkError } from '../../errors.js';

/** localhost, 127.0.0.0/8 or ::1, with or without a port ("127.0.0.1:5000", "[::1]:5000"). */
export function isLoopbackHost(host: string): boolean {
  const name = hostName(host);
  if (name === 'localhost' || name === '::1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return !!m && m.slice(1).every((o) => Number(o) <= 255);
}

/** The name or address in "host[:port]": "[v6]:port", a bare v6 address (more than one colon), or "name:port". */
function hostName(host: string): string {
  return (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':').length > 2 ? host : host.replace(/:\d+$/, '')).toLowerCase();
}

/**
 * Loopback, link-local (169.254.0.0/16, where cloud metadata services
 * answer; fe80::/10) or unspecified (0.0.0.0, ::): the machine itself or its
 * link. Literal addresses only: a name is not resolved here.
 */
export function isLocalHost(host: string): boolean {
  if (isLoopbackHost(host)) return true;
  const name = hostName(host);
  return /^169\.254\.\d{1,3}\.\d{1,3}$/.test(name) || /^0+\.0+\.0+\.0+$/.test(name) || name === '::' || /^fe[89ab][0-9a-f]?:/.test(name);
}

const TLS_CODES = /^(EPROTO|ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_|HOSTNAME_MISMATCH)/;

/** The TLS handshake failed (as opposed to no answer at all): wrong protocol, untrusted or wrong certificate. */
export function isTlsFailure(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  const code = e?.code ?? e?.cause?.code ?? '';
  return TLS_CODES.test(code) || /wrong version number|certificate|SSL routines|TLS/i.test(e?.message ?? '');
}

/** A TLS failure in words with what to do, instead of OpenSSL's internals. Not retried: it will not fix itself. */
export function tlsError(err: unknown, host: string, what: string): BkError {
  const e = err as { code?: string; message?: string };
  const plain = /wrong version number|EPROTO|packet length too long|http request/i.test(`${e.code ?? ''} ${e.message ?? ''}`);
  const why = plain
    ? `${host} does not speak TLS (a plain HTTP registry?)`
    : `the TLS certificate of ${host} was refused (${e.code ?? (e.message ?? '').split('\n')[0]})`;
  const advice = plain
    ? 'add registry.insecure=true to the spec (or insecure: true for the host in the daemon config) to use plain HTTP'
    : 'trust its CA (NODE_EXTRA_CA_CERTS=/path/ca.pem), or, for a plain HTTP registry, add registry.insecure=true to the spec';
  return new BkError('UNAVAILABLE', `${what}: ${why}; ${advice}`, { cause: err, reason: 'tls' });
}
