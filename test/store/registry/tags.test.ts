// Tag listing follows the distribution spec's paging (`n`, `last`, Link
// rel="next"). Debian's registry 2.8 never pages, so a small loopback stub
// plays a registry that does, and one that links elsewhere.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryStore } from '../../../src/store/registry/index.js';

const ALL = ['a', 'b', 'c', 'd', 'e'];
let server: Server;
let host: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    seen.push(url.pathname + url.search);
    if (url.pathname === '/v2/') return res.writeHead(200).end('{}');
    if (url.pathname === '/v2/paged/tags/list') {
      const n = Number(url.searchParams.get('n'));
      const last = url.searchParams.get('last');
      const start = last ? ALL.indexOf(last) + 1 : 0;
      const page = ALL.slice(start, start + n);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (start + n < ALL.length) headers.link = `</v2/paged/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"`;
      return res.writeHead(200, headers).end(JSON.stringify({ name: 'paged', tags: page }));
    }
    if (url.pathname === '/v2/elsewhere/tags/list') {
      // A next page on another origin must not be followed (it would get our credentials).
      return res.writeHead(200, { link: '<http://169.254.169.254/v2/x/tags/list>; rel="next"' }).end(JSON.stringify({ tags: ['x'] }));
    }
    if (url.pathname === '/v2/loop/tags/list') {
      // Two pages linking to each other, each naming the same tags again (and once a name twice).
      const other = url.searchParams.get('p') === '2' ? '1' : '2';
      return res.writeHead(200, { link: `</v2/loop/tags/list?p=${other}>; rel="next"` }).end(JSON.stringify({ tags: ['x', 'y', 'x'] }));
    }
    if (url.pathname === '/v2/endless/tags/list') {
      // Empty pages, each linking to a new URL.
      const p = Number(url.searchParams.get('p') ?? 0) + 1;
      return res.writeHead(200, { link: `</v2/endless/tags/list?p=${p}>; rel="next"` }).end('{"tags":[]}');
    }
    if (url.pathname === '/v2/null/tags/list') return res.writeHead(200).end('{"name":"null","tags":null}');
    res.writeHead(404).end('{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const store = (repo: string) => new RegistryStore(`${host}/${repo}`, { insecure: true, dockerConfig: false });

describe('registry tag listing', () => {
  it('follows Link rel="next" until the last page', async () => {
    const s = store('paged');
    try {
      expect(await s.tags({ pageSize: 2 })).toEqual(ALL);
      expect(seen.filter((p) => p.startsWith('/v2/paged/'))).toEqual([
        '/v2/paged/tags/list?n=2',
        '/v2/paged/tags/list?n=2&last=b',
        '/v2/paged/tags/list?n=2&last=d',
      ]);
    } finally {
      await s.close();
    }
  });

  it('does not follow a next page on another origin; null tags and unknown repositories are empty', async () => {
    for (const [repo, want] of [['elsewhere', ['x']], ['null', []], ['missing', []]] as const) {
      const s = store(repo);
      try {
        expect(await s.tags(), repo).toEqual(want);
      } finally {
        await s.close();
      }
    }
  });

  it('a paging loop or an endless walk of empty pages is an error after one extra page, not a hang', async () => {
    for (const repo of ['loop', 'endless']) {
      const s = store(repo);
      const before = seen.length;
      try {
        await expect(s.tags(), repo).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'tags-paging-loop' });
        expect(seen.length - before, repo).toBeLessThanOrEqual(2);
      } finally {
        await s.close();
      }
    }
  });
});
