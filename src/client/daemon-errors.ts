// What a user reads when the daemon cannot be reached: one sentence that says
// what is wrong and what to do, never grpc-js's own text ("No connection
// established. Last error: … Resolution note: …"). Every CacheClient call
// passes its errors through here.
import { BkError } from '../errors.js';

const SERVE_HINT = 'is `bkcache serve` running there?';

/** The OS or TLS error inside a grpc-js or node:http2 connection failure, e.g. "connect ENOENT /x". */
function lastError(message: string): string {
  const m = /Last error: (?:Error: )?(.*?)(?:\. Resolution note:.*)?$/s.exec(message) ?? /daemon connection failed: (.*)$/s.exec(message);
  return (m ? m[1]! : message).trim().replace(/\s*\(?Resolution note:.*$/s, '');
}

function tlsReason(detail: string): string | undefined {
  if (/self[- ]signed|unable to (get|verify)|certificate|wrong version number|handshake|SSL|TLS|ERR_TLS|altnames/i.test(detail)) {
    return detail.replace(/^Error( \[[A-Z_]+\])?: /, '').replace(/[\s:]+$/, '');
  }
  return undefined;
}

/**
 * Rewrites connection-level failures (UNAVAILABLE before the daemon answered)
 * into messages that name the address; errors the daemon itself sent pass as
 * they are.
 */
export function describeDaemonError(err: BkError, address: string): BkError {
  const wrapAs = (code: BkError['code'], message: string) => new BkError(code, message, { cause: err, reason: err.reason });
  if (err.code === 'DEADLINE_EXCEEDED' && /^Deadline exceeded/i.test(err.message)) {
    return wrapAs('DEADLINE_EXCEEDED', `the daemon at ${address} did not finish before the deadline`);
  }
  const big = /^Received message larger than max \((\d+) vs\.? (\d+)\)/.exec(err.message);
  if (err.code === 'RESOURCE_EXHAUSTED' && big) {
    return wrapAs('RESOURCE_EXHAUSTED', `the daemon's answer (${big[1]} bytes) is larger than this client accepts (${big[2]} bytes: connect's maxReceiveBytes)`);
  }
  // Only grpc-js's and node:http2's own connection texts: a registry outage the daemon reports ("connect ECONNREFUSED …") is not ours to reword.
  if (err.code !== 'UNAVAILABLE' || !/^(No connection established|daemon connection failed|Failed to connect|Connection dropped)/i.test(err.message)) {
    return err;
  }
  const detail = lastError(err.message);
  const wrap = (code: BkError['code'], message: string) => new BkError(code, message, { cause: err, reason: 'daemon-unreachable' });
  if (/\bENOENT\b/.test(detail)) return wrap('UNAVAILABLE', `no daemon at ${address}: the socket does not exist (${SERVE_HINT})`);
  if (/\bECONNREFUSED\b/.test(detail)) return wrap('UNAVAILABLE', `no daemon at ${address}: connection refused (${SERVE_HINT})`);
  if (/\bEACCES\b|\bEPERM\b/.test(detail)) {
    return wrap('PERMISSION_DENIED', `permission denied on the socket ${address}: this user may not connect (see bkcache serve --socket-mode and --socket-group)`);
  }
  if (/\bENOTDIR\b/.test(detail)) return wrap('UNAVAILABLE', `no daemon at ${address}: a part of the socket path is not a directory`);
  if (/\bENOTSOCK\b|\bECONNRESET\b.*unix/.test(detail)) return wrap('UNAVAILABLE', `no daemon at ${address}: the path is not a socket`);
  if (/\b(ENOTFOUND|EAI_AGAIN)\b/.test(detail)) return wrap('UNAVAILABLE', `cannot resolve the daemon's host in ${address}`);
  if (/\b(ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)\b/.test(detail)) return wrap('UNAVAILABLE', `cannot reach the daemon at ${address}: ${detail.match(/\b(ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)\b/)![1]}`);
  const tls = tlsReason(detail);
  if (tls) return wrap('UNAVAILABLE', `TLS with the daemon at ${address} failed: ${tls} (check --tlscacert, --tlscert/--tlskey and --tlsservername)`);
  return wrap('UNAVAILABLE', `cannot reach the daemon at ${address}: ${detail}`);
}
