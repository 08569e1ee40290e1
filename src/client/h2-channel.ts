// The client's own HTTP/2 connection to the daemon, used for Export alone
// (grpc-call.ts says why grpc-js is not used for it). One session per
// client, dialed on first use and again after the daemon closed it (GOAWAY
// on shutdown, a dropped socket); it holds the process open only while a
// call is running, as grpc-js channels do.
import http2 from 'node:http2';
import net from 'node:net';
import { BkError } from '../errors.js';
import { grpcTarget, type ListenAddress } from '../api/address.js';

/** TLS material for tcp:// addresses, already read; no `ca` means the system CAs. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The name to verify the daemon's certificate against (and send as SNI). */
  serverName?: string;
}

interface Live {
  session: http2.ClientHttp2Session;
  active: number;
}

export class H2Channel {
  private live?: Live;
  private closed = false;

  constructor(
    private readonly addr: ListenAddress,
    private readonly tls?: TlsMaterial,
  ) {}

  /** The :authority of requests: grpc-js sends "localhost" for unix sockets too; IPv6 hosts keep their brackets. */
  get authority(): string {
    return this.addr.kind === 'unix' ? 'localhost' : grpcTarget(this.addr);
  }

  /**
   * Opens a request stream; errors (a refused connection too) arrive on the
   * stream. Throws a BkError only for a closed client or headers HTTP/2
   * refuses (a token with a newline, say).
   */
  request(headers: http2.OutgoingHttpHeaders, fresh = false): http2.ClientHttp2Stream {
    if (this.closed) throw new BkError('FAILED_PRECONDITION', 'the client is closed');
    const live = this.session();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = live.session.request(headers, { endStream: false });
    } catch (err) {
      const stale = live.session.closed || live.session.destroyed;
      if (!stale || fresh) throw new BkError('INVALID_ARGUMENT', `cannot start the call: ${(err as Error).message}`, { cause: err });
      // The session started closing (GOAWAY) after it was last used: dial anew, once.
      if (this.live === live) this.live = undefined;
      return this.request(headers, true);
    }
    if (live.active++ === 0) live.session.ref();
    stream.once('close', () => {
      if (--live.active === 0 && !live.session.destroyed) live.session.unref();
    });
    return stream;
  }

  /** Lets running calls finish, then closes the connection. */
  close(): void {
    this.closed = true;
    this.live?.session.close();
    this.live = undefined;
  }

  private session(): Live {
    if (this.live && !this.live.session.closed && !this.live.session.destroyed) return this.live;
    const session = this.dial();
    const live: Live = { session, active: 0 };
    const forget = () => {
      if (this.live === live) this.live = undefined;
    };
    // Session errors also reach every open stream, which reports them; this
    // listener only keeps them from being thrown.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.unref();
    this.live = live;
    return live;
  }

  private dial(): http2.ClientHttp2Session {
    const settings: http2.Settings = { enablePush: false };
    const a = this.addr;
    if (a.kind === 'unix') return http2.connect('http://localhost', { settings, createConnection: () => net.connect(a.path) });
    if (!this.tls) return http2.connect(`http://${this.authority}`, { settings });
    const { ca, cert, key, serverName } = this.tls;
    // No SNI for an IP address (RFC 6066); the certificate is then checked against the IP.
    const host = a.host.replace(/^\[(.*)\]$/, '$1');
    const servername = serverName ?? (net.isIP(host) ? '' : host);
    return http2.connect(`https://${this.authority}`, { settings, ca, cert, key, servername, ALPNProtocols: ['h2'] });
  }
}
