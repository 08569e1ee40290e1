// GrpcCall and H2Channel against a small HTTP/2 server that answers what a
// real daemon cannot be made to on demand: Trailers-Only statuses, HTTP
// errors without a grpc-status, split and oversize frames, compressed
// frames, dropped connections. Everything a real daemon does answer is
// covered by client.test.ts, tls.test.ts and the integration tests.
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FRAME_PREFIX, GrpcCall, grpcTimeout, putFramePrefix, type CallStatus } from '../../src/client/grpc-call.js';
import { H2Channel } from '../../src/client/h2-channel.js';
import { parseAddress } from '../../src/api/address.js';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: () => Promise<Buffer>) => void;

const dir = mkdtempSync(path.join(os.tmpdir(), 'bkcache-h2-'));
const sock = path.join(dir, 's.sock');
let handler: Handler = () => undefined;
let sessions = 0;
const server = http2.createServer();
server.on('session', () => sessions++);
server.on('stream', (stream, headers) => {
  const chunks: Buffer[] = [];
  const ended = new Promise<Buffer>((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
  stream.on('error', () => undefined);
  handler(stream, headers, () => ended);
});

beforeAll(() => new Promise<void>((resolve) => server.listen(sock, resolve)));
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

let channel: H2Channel;
beforeEach(() => {
  channel = new H2Channel({ kind: 'unix', path: sock });
});
afterEach(() => channel.close());

const frame = (m: unknown, flag = 0) => {
  const body = Buffer.from(JSON.stringify(m));
  const f = Buffer.alloc(FRAME_PREFIX + body.length);
  putFramePrefix(f, 0, body.length);
  f[0] = flag;
  body.copy(f, FRAME_PREFIX);
  return f;
};

/** Frames in a body the client sent, decoded. */
const unframe = (b: Buffer) => {
  const out: unknown[] = [];
  for (let p = 0; p < b.length; ) {
    expect(b[p]).toBe(0);
    const n = b.readUInt32BE(p + 1);
    out.push(JSON.parse(b.subarray(p + FRAME_PREFIX, p + FRAME_PREFIX + n).toString()));
    p += FRAME_PREFIX + n;
  }
  return out;
};

/** Answers with these DATA writes, then trailers. */
const answer =
  (writes: Buffer[], trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' }): Handler =>
  (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    for (const w of writes) stream.write(w);
    stream.end();
  };

interface Outcome {
  messages: unknown[];
  status: CallStatus;
}

function call(opts: { deadline?: number; maxReceiveBytes?: number; metadata?: Record<string, string> } = {}, send: (c: GrpcCall<unknown, unknown>) => void = (c) => c.end()) {
  const c = new GrpcCall<unknown, unknown>(channel, {
    path: '/test.v1.Svc/Talk',
    serialize: (m) => Buffer.from(JSON.stringify(m)),
    deserialize: (b) => JSON.parse(b.toString()),
    maxReceiveBytes: opts.maxReceiveBytes ?? 1 << 20,
    deadline: opts.deadline,
    metadata: opts.metadata,
  });
  const messages: unknown[] = [];
  c.on('data', (m) => messages.push(m));
  const done = new Promise<Outcome>((resolve) => c.once('status', (status: CallStatus) => resolve({ messages, status })));
  send(c);
  return { c, done };
}

describe('GrpcCall', () => {
  it('sends gRPC request headers, metadata and frames, and reads messages split and joined across DATA frames', async () => {
    let seen: { headers: http2.IncomingHttpHeaders; body: unknown[] } | undefined;
    const reply = Buffer.concat([frame({ n: 1 }), frame({ n: 2 }), frame({ n: 3 })]);
    handler = async (stream, headers, body) => {
      seen = { headers, body: unframe(await body()) };
      // Split at awkward places: inside a prefix, inside a message, two messages in one write.
      answer([reply.subarray(0, 3), reply.subarray(3, 12), reply.subarray(12)])(stream, headers, body);
    };
    const preFramed = frame({ raw: true });
    const inPieces = frame({ pieces: 2 });
    const { done } = call({ deadline: Date.now() + 60_000, metadata: { authorization: 'Bearer t0k' } }, (c) => {
      c.write({ hello: 'world' });
      c.write(preFramed);
      c.write([inPieces.subarray(0, 3), inPieces.subarray(3)]);
      c.end();
    });
    const out = await done;
    expect(out.status.code).toBe(Status.OK);
    expect(out.messages).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(seen!.body).toEqual([{ hello: 'world' }, { raw: true }, { pieces: 2 }]);
    expect(seen!.headers).toMatchObject({
      ':method': 'POST',
      ':path': '/test.v1.Svc/Talk',
      'content-type': 'application/grpc',
      te: 'trailers',
      authorization: 'Bearer t0k',
    });
    expect(seen!.headers['grpc-timeout']).toMatch(/^\d{4,5}m$/);
  });

  it('reports the status the daemon ends with while the client is still sending, and frees the stream', async () => {
    handler = (stream) => {
      // Like a daemon that found a digest mismatch: it answers after the first frame and reads no further.
      stream.once('data', () => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(Status.DATA_LOSS), 'grpc-message': 'digest mismatch' }, { endStream: true }));
    };
    const { c, done } = call({}, (c) => c.write({ chunk: 1 })); // never half-closes
    const { status } = await done;
    expect(status).toMatchObject({ code: Status.DATA_LOSS, details: 'digest mismatch' });
    const err = await new Promise<Error | null | undefined>((resolve) => c.write({ chunk: 2 }, resolve));
    expect(err).toBeTruthy();
  });

  it('reads a large message that arrives in many small DATA frames', async () => {
    const big = { text: 'x'.repeat(300_000) };
    const f = frame(big);
    const writes: Buffer[] = [f.subarray(0, 1), f.subarray(1, 2)];
    for (let i = 2; i < f.length; i += 1000) writes.push(f.subarray(i, i + 1000));
    handler = answer(writes);
    const out = await call().done;
    expect(out.status.code).toBe(Status.OK);
    expect(out.messages).toEqual([big]);
  });

  it('reads a Trailers-Only status, percent-decoded, with its metadata', async () => {
    handler = (stream) =>
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(Status.NOT_FOUND), 'grpc-message': encodeURIComponent('no cache at "x" – é'), 'bkcache-reason': 'not-found' },
        { endStream: true },
      );
    const { status } = await call().done;
    expect(status.code).toBe(Status.NOT_FOUND);
    expect(status.details).toBe('no cache at "x" – é');
    expect(status.metadata.get('bkcache-reason')).toEqual(['not-found']);
  });

  it.each([
    [503, Status.UNAVAILABLE],
    [401, Status.UNAUTHENTICATED],
    [404, Status.UNIMPLEMENTED],
    [418, Status.UNKNOWN],
  ])('maps HTTP %i without a grpc-status to code %i', async (http, code) => {
    handler = (stream) => stream.respond({ ':status': http }, { endStream: true });
    expect((await call().done).status.code).toBe(code);
  });

  it('refuses a response message over the limit and cancels the stream', async () => {
    let reset: number | undefined;
    handler = (stream) => {
      stream.on('close', () => (reset = stream.rstCode));
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame({ big: 'x'.repeat(200) })); // and the stream stays open
    };
    const { status } = await call({ maxReceiveBytes: 100 }).done;
    expect(status.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(status.details).toMatch(/larger than max/);
    await new Promise((r) => setTimeout(r, 50));
    expect(reset).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it('refuses compressed messages (only identity was offered)', async () => {
    handler = answer([frame({ a: 1 }, 1)]);
    expect((await call().done).status.code).toBe(Status.INTERNAL);
  });

  it('reports a stream that ends inside a message as INTERNAL, even with status OK', async () => {
    handler = answer([frame({ a: 1 }).subarray(0, 8)]);
    const { status } = await call().done;
    expect(status.code).toBe(Status.INTERNAL);
  });

  it('a connection dropped mid-call is UNAVAILABLE, and the next call dials anew', async () => {
    handler = (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      stream.write(frame({ first: true }), () => stream.session?.destroy());
    };
    const before = sessions;
    const out = await call({}, () => undefined).done;
    expect(out.messages).toEqual([{ first: true }]);
    expect(out.status.code).toBe(Status.UNAVAILABLE);
    handler = answer([frame({ again: true })]);
    expect((await call().done).messages).toEqual([{ again: true }]);
    expect(sessions).toBe(before + 2);
  });

  it('calls on one channel share one connection', async () => {
    handler = answer([frame({ ok: 1 })]);
    const before = sessions;
    await Promise.all([call().done, call().done, call().done]);
    expect(sessions).toBe(before + 1);
  });

  it('expires at its deadline with DEADLINE_EXCEEDED, and cancel() is CANCELLED', async () => {
    handler = (stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc' }); // never answers
    const t0 = Date.now();
    const late = await call({ deadline: Date.now() + 150 }, () => undefined).done;
    expect(late.status.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const { c, done } = call({}, () => undefined);
    c.cancel();
    expect((await done).status.code).toBe(Status.CANCELLED);
    // Writing after the end is refused through the callback, not thrown.
    const err = await new Promise<Error | null | undefined>((resolve) => c.write({ late: true }, resolve));
    expect(err?.message).toMatch(/ended/);
  });

  it('dials an IPv6 tcp address as parseAddress gives it, brackets and all', async () => {
    const v6 = http2.createServer();
    let authority: string | undefined;
    v6.on('stream', (stream, headers) => {
      authority = headers[':authority'];
      answer([frame({ v6: true })])(stream, headers, async () => Buffer.alloc(0));
    });
    await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
    const port = (v6.address() as { port: number }).port;
    const ch = new H2Channel(parseAddress(`tcp://[::1]:${port}`));
    try {
      const c = new GrpcCall<unknown, unknown>(ch, { path: '/x/y', serialize: () => Buffer.alloc(0), deserialize: (b) => JSON.parse(b.toString()), maxReceiveBytes: 100 });
      const messages: unknown[] = [];
      c.on('data', (m) => messages.push(m));
      c.end();
      const st = await new Promise<CallStatus>((resolve) => c.once('status', resolve));
      expect(st.code).toBe(Status.OK);
      expect(messages).toEqual([{ v6: true }]);
      expect(authority).toBe(`[::1]:${port}`);
    } finally {
      ch.close();
      await new Promise((resolve) => v6.close(resolve));
    }
  });

  it('no daemon listening is UNAVAILABLE', async () => {
    const nowhere = new H2Channel({ kind: 'unix', path: path.join(dir, 'missing.sock') });
    const c = new GrpcCall<unknown, unknown>(nowhere, { path: '/x/y', serialize: () => Buffer.alloc(0), deserialize: () => null, maxReceiveBytes: 10 });
    const st = await new Promise<CallStatus>((resolve) => c.once('status', resolve));
    nowhere.close();
    expect(st.code).toBe(Status.UNAVAILABLE);
    expect(st.details).toMatch(/ENOENT/);
  });
});

describe('grpcTimeout', () => {
  it('fits the value in 8 digits by choosing the unit', () => {
    expect(grpcTimeout(1500)).toBe('1500m');
    expect(grpcTimeout(-5)).toBe('0m');
    expect(grpcTimeout(99_999_999)).toBe('99999999m');
    expect(grpcTimeout(100_000_000)).toBe('100000S');
    expect(grpcTimeout(1e14)).toBe('27777778H');
  });
});
