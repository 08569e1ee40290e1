// Tags list and catalog, both paginated with `n` and `last` and a Link header.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
// The catalog lists only repositories the caller may pull: its answer is a
// function of what the caller could read anyway.
import type { Call, GatewayContext } from './context.js';
import { DistError } from './errors.js';

const MAX_PAGE = 1000;

function page(call: Call, all: string[], path: string): { items: string[]; link?: string } {
  const nRaw = call.url.searchParams.get('n');
  const last = call.url.searchParams.get('last') ?? '';
  let n = MAX_PAGE;
  if (nRaw !== null) {
    // The spec's codes have none for a bad page size (distribution's own is PAGINATION_NUMBER_INVALID, 400):
    // UNSUPPORTED ("an invalid set of parameters"), with the status of a bad request, not 405.
    if (!/^\d+$/.test(nRaw)) throw new DistError('UNSUPPORTED', 'bad n', {}, 'n must be a non-negative integer', 400);
    // Any larger page is the largest page.
    n = Math.min(Number(nRaw), MAX_PAGE);
  }
  const after = last ? all.filter((t) => t > last) : all;
  const items = after.slice(0, n);
  if (after.length > n && items.length) {
    const q = new URLSearchParams({ n: String(n), last: items.at(-1)! });
    return { items, link: `<${path}?${q}>; rel="next"` };
  }
  return { items };
}

export async function listTags(ctx: GatewayContext, call: Call, repo: string): Promise<void> {
  const tags = await ctx.upstream.tags(repo, call.signal);
  if (tags === undefined) throw new DistError('NAME_UNKNOWN');
  const p = page(call, tags, `/v2/${repo}/tags/list`);
  call.sendJson(200, { name: repo, tags: p.items }, p.link ? { link: p.link } : {});
}

export async function listCatalog(ctx: GatewayContext, call: Call): Promise<void> {
  const names = (await ctx.upstream.catalog(call.signal)).filter((r) => ctx.auth.may(call.identity, 'pull', r)).sort();
  const p = page(call, names, '/v2/_catalog');
  call.sendJson(200, { repositories: p.items }, p.link ? { link: p.link } : {});
}
