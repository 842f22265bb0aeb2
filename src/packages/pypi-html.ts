/**
 * Render a PEP 691 JSON project page as the PEP 503 HTML page, so an HTML request can be answered
 * from the (filtered) JSON form fetched upstream. PURE.
 *
 * Per file, one anchor: `href` is the file's URL with one hash in the fragment (`#sha256=…`, PEP
 * 503; sha256 preferred), `data-requires-python` (PEP 503/345), `data-yanked` (PEP 592: the reason,
 * empty when none is given), `data-core-metadata` and its older twin `data-dist-info-metadata` (PEP
 * 714/658: `true` or `<hash>=<value>`), `data-gpg-sig` (PEP 503) and `data-provenance` (PEP 740).
 * Every value and text is HTML-escaped; a hash is written only when its name and value are plain
 * (`[a-z0-9_]`, hex), so upstream text cannot reach the page unescaped.
 */
import { isJsonObject, type JsonObject } from './npm-packument.js'

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] as string)
}

/** `name=value` for the preferred hash of a PEP 691 `hashes` object, or null. */
function pickHash(hashes: unknown): string | null {
  if (!isJsonObject(hashes)) return null
  const names = Object.keys(hashes).filter((n) => /^[a-z0-9_]+$/.test(n))
  const ordered = names.includes('sha256') ? ['sha256', ...names.filter((n) => n !== 'sha256')] : names
  for (const name of ordered) {
    const value = hashes[name]
    if (typeof value === 'string' && /^[0-9a-fA-F]+$/.test(value)) return `${name}=${value}`
  }
  return null
}

/** PEP 714 value: `true`, `<hash>=<value>`, or null when the metadata file is not served. */
function metadataValue(value: unknown): string | null {
  if (value === true) return 'true'
  if (isJsonObject(value)) return pickHash(value) ?? 'true'
  return null
}

function renderAnchor(file: unknown): string | null {
  if (!isJsonObject(file) || typeof file.filename !== 'string' || typeof file.url !== 'string') return null
  const hash = pickHash(file.hashes)
  const url = file.url.split('#', 1)[0] as string
  const attrs: [string, string][] = [['href', hash === null ? url : `${url}#${hash}`]]
  if (typeof file['requires-python'] === 'string') attrs.push(['data-requires-python', file['requires-python']])
  const yanked = file.yanked
  if (yanked === true || (typeof yanked === 'string' && yanked !== '')) {
    attrs.push(['data-yanked', yanked === true ? '' : yanked])
  }
  const core = metadataValue(file['core-metadata'] ?? file['dist-info-metadata'])
  if (core !== null) attrs.push(['data-dist-info-metadata', core], ['data-core-metadata', core])
  if (typeof file['gpg-sig'] === 'boolean') attrs.push(['data-gpg-sig', String(file['gpg-sig'])])
  if (typeof file.provenance === 'string') attrs.push(['data-provenance', file.provenance])
  const rendered = attrs.map(([k, v]) => `${k}="${escapeHtml(v)}"`).join(' ')
  return `    <a ${rendered}>${escapeHtml(file.filename)}</a><br />`
}

/** The PEP 503 page for a PEP 691 JSON project page (already filtered). */
export function renderSimpleHtml(page: JsonObject, project: string): string {
  const meta = isJsonObject(page.meta) ? page.meta : {}
  const api =
    typeof meta['api-version'] === 'string' && /^\d+\.\d+$/.test(meta['api-version']) ? meta['api-version'] : '1.0'
  const name = escapeHtml(typeof page.name === 'string' ? page.name : project)
  const files = Array.isArray(page.files) ? page.files : []
  const anchors = files.map(renderAnchor).filter((a): a is string => a !== null)
  const serial = meta['_last-serial']
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    `    <meta name="pypi:repository-version" content="${api}">`,
    `    <title>Links for ${name}</title>`,
    '  </head>',
    '  <body>',
    `    <h1>Links for ${name}</h1>`,
    ...anchors,
    '  </body>',
    '</html>',
    ...(Number.isSafeInteger(serial) ? [`<!--SERIAL ${String(serial)}-->`] : []),
    '',
  ].join('\n')
}
