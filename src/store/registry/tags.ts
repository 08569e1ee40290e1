// Listing a repository's tags, page by page (GET /v2/<name>/tags/list with
// `n` and `last`, following the Link header).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
// Bounded: each page is read with a byte cap, must name a tag not seen
// before to be followed, and the walk stops after a fixed number of tags, so
// a hostile registry cannot keep us paging forever.
import { invalidArgument, resourceExhausted } from '../../errors.js';
import { isObject, parseJsonBytes } from '../../oci/go-json.js';
import { readAll } from '../content.js';
import { header } from './client.js';
import { pullScope, type RepoContext } from './repo.js';

const PAGE = 1000;
const MAX_PAGE_BYTES = 4 << 20;
export const MAX_TAGS = 100_000;

export async function listTags(ctx: RepoContext, signal?: AbortSignal, pageSize = PAGE): Promise<string[]> {
  // Each name once: a registry may repeat names, across pages or within one.
  const tags = new Set<string>();
  let url: URL | undefined = new URL(`${ctx.endpoint.origin}/v2/${ctx.repository}/tags/list?n=${pageSize}`);
  while (url) {
    const before = tags.size;
    const res = await ctx.client.send({
      method: 'GET',
      url,
      registry: ctx.endpoint.registry,
      scopes: pullScope(ctx),
      expect: [200, 404],
      what: `GET tags ${ctx.location}`,
      signal,
    });
    if (res.status === 404) {
      await res.body.dump().catch(() => {});
      return [...tags]; // a repository that does not exist has no tags
    }
    const doc = parseJsonBytes(await readAll(res.body, MAX_PAGE_BYTES, `tags of ${ctx.location}`), `tags of ${ctx.location}`);
    const page = isObject(doc) ? doc['tags'] : undefined;
    if (page !== null && page !== undefined && !Array.isArray(page)) throw invalidArgument(`tags of ${ctx.location}: "tags" is not a list`);
    for (const t of (page ?? []) as unknown[]) if (typeof t === 'string') tags.add(t);
    if (tags.size > MAX_TAGS) throw resourceExhausted(`${ctx.location} lists more than ${MAX_TAGS} tags`, { reason: 'too-many-tags' });
    url = nextPage(header(res, 'link'), url);
    // Paging goes forward (`last` is the page's last tag): a page that named no
    // new tag yet links on is a loop, or an endless walk of empty pages.
    if (url && tags.size === before) {
      throw invalidArgument(`tags of ${ctx.location}: a page named no new tag but links to another (a paging loop)`, { reason: 'tags-paging-loop' });
    }
  }
  return [...tags];
}

/** The `rel="next"` target of a Link header, on the same origin only (it is followed with our credentials). */
function nextPage(link: string | undefined, base: URL): URL | undefined {
  const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!m) return undefined;
  const next = new URL(m[1]!, base);
  return next.origin === base.origin && next.href !== base.href ? next : undefined;
}
