// Analyst page: blocked requests live (SSE over fetch, so the bearer token
// travels in a header rather than a URL), filters, approve/dismiss per row,
// and the current approvals with time left. No framework, no external assets.
// Every deny reason of src/policy/reasons.ts (all but 'allowed').
const REASONS = ['denied_no_rule', 'denied_by_rule', 'denied_port', 'denied_method', 'denied_path', 'denied_private_address', 'denied_sni_mismatch', 'denied_host_mismatch', 'denied_auth_required', 'denied_auth_invalid', 'denied_rate_limited', 'denied_secret_detected', 'denied_git_push', 'denied_repo_write', 'denied_package', 'denied_internal_error', 'upstream_error']
const $ = (sel) => document.querySelector(sel)
const state = { token: sessionStorage.getItem('portcullis-token') || '', rows: new Map(), rowEls: new Map(), dismissed: new Set(), approved: new Map(), stream: null, connected: false }

function api(path, init = {}) {
  return fetch(path, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${state.token}`, 'content-type': 'application/json' } })
}

function setStatus(text, kind = '') {
  const el = $('#status')
  el.textContent = text
  el.className = `status ${kind}`
}

/** Errors of an action (approve, revoke, load) in a dismissible alert region, never alert(). */
function showError(text) {
  $('#error-text').textContent = text
  $('#error').hidden = false
}

function clearError() {
  $('#error').hidden = true
  $('#error-text').textContent = ''
}

async function errorMessage(res) {
  const out = await res.json().catch(() => ({}))
  return out.message || out.error || `HTTP ${res.status}`
}

/** A 401 anywhere means the token is wrong (or was rotated): stop and ask for it again. */
function tokenRefused() {
  state.connected = false
  state.stream?.abort()
  sessionStorage.removeItem('portcullis-token')
  setStatus('token refused: check PORTCULLIS_ADMIN_TOKEN', 'error')
  const input = $('#token')
  input.setAttribute('aria-invalid', 'true')
  input.focus()
  input.select()
  updateEmpty()
}

function filters() {
  // Sandbox and label (SPEC §9): a sandbox id, and `key=value`, as /api/events takes them.
  const field = (sel) => ($(sel).value || '').trim()
  return { agent: $('#f-agent').value.trim(), host: $('#f-host').value.trim().toLowerCase(), reason: $('#f-reason').value, sandbox: field('#f-sandbox').toUpperCase(), label: field('#f-label') }
}

function matches(r, f) {
  if (f.agent && r.agent !== f.agent) return false
  if (f.sandbox && r.sandbox !== f.sandbox) return false
  if (f.label) {
    const eq = f.label.indexOf('=')
    const labels = r.labels || {}
    const key = eq > 0 ? f.label.slice(0, eq) : f.label
    if (!Object.hasOwn(labels, key) || (eq > 0 && labels[key] !== f.label.slice(eq + 1))) return false
  }
  if (f.reason && r.reason !== f.reason) return false
  if (f.host) {
    if (f.host.startsWith('*.')) { if (!r.host.endsWith(f.host.slice(1))) return false }
    else if (r.host !== f.host) return false
  }
  return true
}

/** The reasons an approval can override (policy/approvals.ts isApprovable); the admin API refuses the rest. */
const APPROVABLE = new Set(['denied_no_rule', 'denied_by_rule', 'denied_port', 'denied_method', 'denied_path'])

/** `host:port`, an IPv6 address in brackets (net/host.ts formatAuthority). */
function authority(host, port) {
  return String(host).includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

function cell(text, cls) {
  const td = document.createElement('td')
  td.textContent = text == null ? '' : String(text)
  if (cls) td.className = cls
  return td
}

function renderRow(r, isNew) {
  const tr = document.createElement('tr')
  tr.dataset.id = r.id
  if (isNew) tr.classList.add('new')
  tr.append(cell(new Date(r.time).toLocaleTimeString()), agentCell(r), cell(r.method), cell(authority(r.host, r.port), 'host'), cell(r.path || '', 'path'), cell(r.repeats > 0 ? `${r.reason} ×${r.repeats + 1}` : r.reason, 'reason'), cell(r.rule || '—', 'mono'), cell(r.id, 'mono'))
  const action = document.createElement('td')
  action.className = 'action'
  tr.append(action)
  if (state.approved.has(r.id)) {
    tr.classList.add('approved')
    action.textContent = state.approved.get(r.id)
    return tr
  }
  if (!APPROVABLE.has(r.reason)) {
    // An approval lifts only a policy denial; a rate limit, a failed login or a blocked address stays.
    const note = document.createElement('span')
    note.className = 'not-approvable'
    note.textContent = 'not approvable'
    note.title = `${r.reason} is not a policy rule an approval can lift`
    const dismiss = document.createElement('button')
    dismiss.type = 'button'
    dismiss.className = 'dismiss-btn'
    dismiss.textContent = 'Dismiss'
    dismiss.addEventListener('click', () => { state.dismissed.add(r.id); tr.remove(); updateEmpty() })
    action.append(note, dismiss)
    return tr
  }
  const form = $('#approve-form').content.firstElementChild.cloneNode(true)
  form.setAttribute('aria-label', `Approve request ${r.id}`)
  // A sandbox's request may be approved for its agent (every sandbox of it) or for that sandbox only.
  if (!r.sandbox) form.querySelector('.sandbox-only').remove()
  if (r.method === 'CONNECT') form.scope.value = 'host'
  form.addEventListener('submit', (e) => { e.preventDefault(); approve(r, form, tr) })
  form.querySelector('.dismiss-btn').addEventListener('click', () => { state.dismissed.add(r.id); tr.remove(); updateEmpty() })
  if (!r.agent) form.querySelectorAll('input,select,.approve-btn').forEach((el) => { el.disabled = true; el.title = 'only denials of a known agent can be approved' })
  action.append(form)
  return tr
}

/** The agent, and under it a sandbox's id and labels (SPEC §9). */
function agentCell(r) {
  const td = cell(r.agent)
  if (!r.sandbox) return td
  td.classList.add('sandbox')
  const id = document.createElement('span')
  id.className = 'sandbox-id'
  id.textContent = r.sandbox
  id.title = `sandbox ${r.sandbox}`
  td.append(document.createElement('br'), id)
  for (const [k, v] of Object.entries(r.labels || {})) {
    const tag = document.createElement('span')
    tag.className = 'label'
    tag.textContent = `${k}=${v}`
    td.append(' ', tag)
  }
  return td
}

/** A row's element, made once: a reload or a filter change must not lose what an analyst is typing in it. */
function rowElement(r, isNew) {
  let el = state.rowEls.get(r.id)
  if (el === undefined) {
    el = renderRow(r, isNew)
    state.rowEls.set(r.id, el)
  }
  return el
}

function render() {
  const body = $('#blocked tbody')
  const f = filters()
  for (const id of state.rowEls.keys()) if (!state.rows.has(id)) state.rowEls.delete(id)
  body.replaceChildren(...[...state.rows.values()].filter((r) => !state.dismissed.has(r.id) && matches(r, f)).reverse().map((r) => rowElement(r, false)))
  updateEmpty()
}

function updateEmpty() {
  const blocked = $('#blocked-empty')
  const shown = $('#blocked tbody').children.length
  blocked.hidden = shown > 0
  if (!state.connected) blocked.textContent = 'Enter the admin token to see blocked requests.'
  // With a filter set the server sends only what it selects, so no rows at all may still mean "none match".
  else if (Object.values(filters()).some(Boolean) || state.rows.size > state.dismissed.size) blocked.textContent = 'No blocked requests match the filters.'
  else blocked.textContent = 'No blocked requests yet. New ones appear here live.'
  $('#blocked').hidden = shown === 0
  const approvals = $('#approvals-empty')
  const active = $('#approvals tbody').children.length
  approvals.hidden = active > 0
  approvals.textContent = state.connected ? 'No active approvals.' : 'Enter the admin token to see current approvals.'
  $('#approvals').hidden = active === 0
}

function addRecord(r) {
  if (r.event !== 'decision' || r.decision !== 'deny' || state.rows.has(r.id)) return
  state.rows.set(r.id, r)
  if (state.rows.size > 2000) state.rows.delete(state.rows.keys().next().value)
  if (!state.dismissed.has(r.id) && matches(r, filters())) {
    $('#blocked tbody').prepend(rowElement(r, true))
    updateEmpty()
  }
}

/** Who approves and revokes from this page (SPEC §5: each approval records who): the name field, kept for the session. */
function approver() {
  const name = $('#approver').value.trim().slice(0, 100)
  return name ? `${name} (analyst page)` : 'analyst page'
}

async function approve(r, form, tr) {
  const body = { request_id: r.id, scope: form.scope.value, ttl: form.ttl.value.trim(), reason: form.reason.value.trim(), approved_by: approver() }
  if (r.sandbox && form.sandbox_only && form.sandbox_only.checked) body.sandbox_only = true
  const btn = form.querySelector('.approve-btn')
  btn.disabled = true
  try {
    const res = await api('/api/approvals', { method: 'POST', body: JSON.stringify(body) })
    if (res.status === 401) return tokenRefused()
    if (!res.ok) return showError(`Approval of ${r.id} refused: ${await errorMessage(res)}`)
    const out = await res.json()
    clearError()
    // Approving again what an approval in force opens answers that approval (extended, or unchanged).
    const until = new Date(out.expires_at).toLocaleString()
    const text = !out.already ? `approved (${out.scope}, until ${until})` : out.extended ? `already approved (${out.scope}); extended until ${until}` : `already approved (${out.scope}, until ${until}; unchanged)`
    state.approved.set(r.id, text)
    tr.classList.add('approved')
    form.parentElement.replaceChildren(document.createTextNode(text))
    loadApprovals()
  } catch (err) {
    showError(`Approval of ${r.id} failed: ${err.message}`)
  } finally {
    btn.disabled = false
  }
}

async function revokeApproval(a, btn) {
  btn.disabled = true
  try {
    const res = await api(`/api/approvals/${encodeURIComponent(a.id)}?by=${encodeURIComponent(approver())}`, { method: 'DELETE' })
    if (res.status === 401) return tokenRefused()
    // 404: already revoked or expired elsewhere; the reload below shows the truth.
    if (!res.ok && res.status !== 404) showError(`Revoking ${a.id} failed: ${await errorMessage(res)}`)
    else clearError()
  } catch (err) {
    showError(`Revoking ${a.id} failed: ${err.message}`)
  }
  btn.disabled = false
  loadApprovals()
}

function fmtLeft(s) {
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
  if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`
  return `${s}s`
}

async function loadApprovals() {
  let approvals
  try {
    const res = await api('/api/approvals')
    if (res.status === 401) return tokenRefused()
    if (!res.ok) return showError(`Loading approvals failed: ${await errorMessage(res)}`)
    approvals = (await res.json()).approvals
  } catch (err) {
    return showError(`Loading approvals failed: ${err.message}`)
  }
  $('#approvals tbody').replaceChildren(...approvals.map((a) => {
    const tr = document.createElement('tr')
    tr.dataset.id = a.id
    const revoke = document.createElement('button')
    revoke.type = 'button'
    revoke.textContent = 'Revoke'
    revoke.className = 'revoke-btn'
    revoke.setAttribute('aria-label', `Revoke approval ${a.id} for ${a.agent} on ${a.host}`)
    revoke.addEventListener('click', () => revokeApproval(a, revoke))
    const td = document.createElement('td')
    td.append(revoke)
    const left = cell(fmtLeft(a.expires_in_s), 'left')
    left.title = `expires ${new Date(a.expires_at).toLocaleString()}`
    tr.append(cell(a.agent), cell(a.scope), cell(a.covers, 'mono'), left, cell(a.approved_by), cell(a.reason), td)
    return tr
  }))
  updateEmpty()
}

/**
 * The newest 200 denials the filters select, asked of the server: filtering only what was loaded
 * would let one noisy agent push every other agent's denials out of reach.
 */
async function loadRecent() {
  let events
  try {
    const p = new URLSearchParams({ decision: 'deny', limit: '200' })
    for (const [k, v] of Object.entries(filters())) if (v) p.set(k, v)
    const res = await api(`/api/events?${p}`)
    if (res.status === 401) { tokenRefused(); return false }
    // A filter still being typed (`*.`) is not a query yet: keep the rows, filtered here.
    if (res.status === 400 && state.connected) { setStatus(`filter: ${await errorMessage(res)}`, 'error'); render(); return true }
    if (!res.ok) { setStatus(`events: ${await errorMessage(res)}`, 'error'); return false }
    events = (await res.json()).events
  } catch (err) {
    setStatus(`cannot reach the admin API (${err.message})`, 'error')
    return false
  }
  if ($('#status').textContent.startsWith('filter:')) setStatus('live', 'live')
  state.connected = true
  $('#token').removeAttribute('aria-invalid')
  state.rows.clear()
  for (const r of events.slice().reverse()) if (r.event === 'decision' && r.decision === 'deny') state.rows.set(r.id, r)
  render()
  return true
}

async function follow() {
  state.stream?.abort()
  const ctl = new AbortController()
  state.stream = ctl
  for (let attempt = 0; !ctl.signal.aborted; attempt++) {
    try {
      const res = await api('/api/events/stream?decision=deny', { signal: ctl.signal, headers: { accept: 'text/event-stream' } })
      if (res.status === 401) return tokenRefused()
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
      setStatus('live', 'live')
      attempt = 0
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n')
          if (data) { try { addRecord(JSON.parse(data)) } catch { /* ignore a malformed frame */ } }
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return
      setStatus(`reconnecting (${err.message})`, 'error')
    }
    await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))))
  }
}

async function connect() {
  state.stream?.abort()
  if (!state.token) { setStatus('enter the admin token'); updateEmpty(); return }
  setStatus('connecting…')
  if (await loadRecent()) {
    sessionStorage.setItem('portcullis-token', state.token)
    clearError()
    loadApprovals()
    follow()
  }
}

/**
 * The suggest view (SPEC §10): the rules that would admit the blocked requests the current filter
 * selects, from GET /api/suggest (the same logic as `portcullis suggest`), one block of YAML per
 * agent or group to copy under its `allow:`, with the counts and warnings as comments.
 */
async function suggestRules() {
  const f = filters()
  const p = new URLSearchParams()
  for (const k of ['agent', 'host', 'reason', 'sandbox', 'label']) if (f[k]) p.set(k, f[k])
  const scope = [...p].map(([k, v]) => `${k} ${v}`).join(', ') || 'all blocked requests'
  const btn = $('#suggest-btn')
  btn.disabled = true
  try {
    const res = await api(`/api/suggest?${p}`)
    if (res.status === 401) return tokenRefused()
    if (!res.ok) return showError(`Suggesting rules failed: ${await errorMessage(res)}`)
    clearError()
    renderSuggestion(await res.json(), scope)
  } catch (err) {
    showError(`Suggesting rules failed: ${err.message}`)
  } finally {
    btn.disabled = false
  }
}

function listOf(items) {
  const ul = document.createElement('ul')
  for (const text of items) { const li = document.createElement('li'); li.textContent = text; ul.append(li) }
  return ul
}

function renderSuggestion(out, scope) {
  $('#suggest-scope').textContent = `(${scope}; ${out.source === 'redis' ? 'Redis' : 'this instance\'s memory'})`
  const summary = $('#suggest-summary')
  summary.textContent = out.targets.length > 0
    ? `${out.requests} blocked request(s); paste each block under the allow: list it names.`
    : `${out.requests} blocked request(s), none of them a denial an allow rule lifts.`
  const blocks = out.targets.map((t) => {
    const div = document.createElement('div')
    div.className = 'target'
    const h = document.createElement('h3')
    h.textContent = `${t.kind} ${t.name}: add under ${t.key} (${t.rules.length} rule(s) for ${t.requests} request(s))`
    const pre = document.createElement('pre')
    pre.textContent = t.yaml
    const copy = document.createElement('button')
    copy.type = 'button'
    copy.className = 'copy-btn'
    copy.textContent = 'Copy YAML'
    copy.setAttribute('aria-label', `Copy the YAML for ${t.kind} ${t.name}`)
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(t.yaml)
        copy.textContent = 'Copied'
      } catch {
        // No clipboard permission (plain http, an old browser): select the text for Ctrl-C instead.
        const range = document.createRange()
        range.selectNodeContents(pre)
        getSelection().removeAllRanges()
        getSelection().addRange(range)
        copy.textContent = 'Selected: press Ctrl-C'
      }
    })
    div.append(h, pre, copy)
    const notes = [...t.notes, ...t.uncovered.map((u) => `still denied with these rules: ${u.method} ${authority(u.host, u.port)}${u.path || ''} (${u.reason})`)]
    if (notes.length > 0) div.append(listOf(notes))
    return div
  })
  if (out.not_suggested.length > 0) {
    const div = document.createElement('div')
    div.className = 'target'
    const h = document.createElement('h3')
    h.textContent = 'Not suggested'
    div.append(h, listOf(out.not_suggested.map((n) => `${n.reason}: ${n.requests} request(s) to ${n.hosts.slice(0, 5).join(', ')}: ${n.why}`)))
    blocks.push(div)
  }
  $('#suggest-targets').replaceChildren(...blocks)
  $('#suggest').hidden = false
  $('#suggest').scrollIntoView({ block: 'start' })
}

for (const r of REASONS) $('#f-reason').append(new Option(r, r))
let refilter = 0
$('#filters').addEventListener('input', () => {
  render()
  // Then the server's answer for the new filter, once typing pauses.
  clearTimeout(refilter)
  refilter = setTimeout(() => { if (state.connected) loadRecent() }, 300)
})
$('#clear-filters').addEventListener('click', () => { $('#filters').reset(); render(); if (state.connected) loadRecent() })
$('#approver').value = sessionStorage.getItem('portcullis-approver') || ''
$('#approver').addEventListener('change', () => sessionStorage.setItem('portcullis-approver', $('#approver').value.trim()))
$('#token-form').addEventListener('submit', (e) => { e.preventDefault(); state.token = $('#token').value.trim(); connect() })
$('#error-close').addEventListener('click', clearError)
$('#suggest-btn').addEventListener('click', () => suggestRules())
$('#suggest-close').addEventListener('click', () => { $('#suggest').hidden = true })
setInterval(() => { if (state.connected) loadApprovals() }, 5000)
$('#token').value = state.token
connect()
