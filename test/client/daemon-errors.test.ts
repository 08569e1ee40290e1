// grpc-js's connection texts become sentences that name the daemon's address.
import { describe, expect, it } from 'vitest';
import { describeDaemonError } from '../../src/client/daemon-errors.js';
import { BkError } from '../../src/errors.js';

const grpcJs = (last: string) => new BkError('UNAVAILABLE', `No connection established. Last error: ${last}. Resolution note: `);

describe('describeDaemonError', () => {
  it('says what is wrong with the connection, never grpc-js text', () => {
    const cases: [BkError, string, string][] = [
      [grpcJs('Error: connect ENOENT /x'), 'UNAVAILABLE', 'no daemon at unix:///x: the socket does not exist (is `bkcache serve` running there?)'],
      [grpcJs('Error: connect ECONNREFUSED /x'), 'UNAVAILABLE', 'no daemon at unix:///x: connection refused (is `bkcache serve` running there?)'],
      [grpcJs('Error: connect EACCES /x'), 'PERMISSION_DENIED', 'permission denied on the socket unix:///x: this user may not connect (see bkcache serve --socket-mode and --socket-group)'],
      [new BkError('UNAVAILABLE', 'daemon connection failed: connect ENOENT /x'), 'UNAVAILABLE', 'no daemon at unix:///x: the socket does not exist (is `bkcache serve` running there?)'],
      [new BkError('DEADLINE_EXCEEDED', 'Deadline exceeded after 5.002s,LB pick: 0.001s'), 'DEADLINE_EXCEEDED', 'the daemon at unix:///x did not finish before the deadline'],
    ];
    for (const [err, code, message] of cases) {
      const e = describeDaemonError(err, 'unix:///x');
      expect(e.code).toBe(code);
      expect(e.message).toBe(message);
    }
  });

  it('a TLS failure keeps the reason, without the Error [CODE] prefix', () => {
    const e = describeDaemonError(grpcJs("Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: "), 'tcp://127.0.0.1:7070');
    expect(e.message).toBe(
      "TLS with the daemon at tcp://127.0.0.1:7070 failed: Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list (check --tlscacert, --tlscert/--tlskey and --tlsservername)",
    );
  });

  it('errors the daemon sent pass as they are', () => {
    const mine = new BkError('NOT_FOUND', 'tag "x" not found in local:/d');
    expect(describeDaemonError(mine, 'unix:///x')).toBe(mine);
    const outage = new BkError('UNAVAILABLE', 'HEAD manifest registry:r/x:y: connect ECONNREFUSED 10.0.0.1:5000');
    expect(describeDaemonError(outage, 'unix:///x')).toBe(outage);
  });
});
