// Analyst page: blocked requests live (SSE over fetch, so the bearer token
// travels in a header rather than a URL), filters, approve/dismiss per row,
// and the current approvals with time left. No framework, no external assets.
const REASONS = ['denied_no_rule', 'denied_by_rule', 'denied_port', 'denied_method', 'denied_path', 'denied_private_address', 'denied_sni_mismatch', 'denied_host_mismatch', 'denied_rate_limited', 'denied_secret_detected', 'denied_internal_error', 'upstream_error']
const $ = (sel) => document.querySelector(sel)
const state = { token: sessionStorage.getItem('portcullis-token') || '', rows: new Map(), dismissed: new Set(), stream: null }

function api(path, init = {}) {
  return fetch(path, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${state.token}`, 'content-type': 'application/json' } })
}

function setStatus(text, kind = '') {
  const el = $('#status')
  el.textContent = text
  el.className = `status ${kind}`
}

function filters() {
  return { agent: $('#f-agent').value.trim(), host: $('#f-host').value.trim().toLowerCase(), reason: $('#f-reason').value }
}

function matches(r, f) {
  if (f.agent && r.agent !== f.agent) return false
  if (f.reason && r.reason !== f.reason) return false
  if (f.host) {
    if (f.host.startsWith('*.')) { if (!r.host.endsWith(f.host.slice(1))) return false }
    else if (r.host !== f.host) return false
  }
  return true
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
  tr.append(cell(new Date(r.time).toLocaleTimeString()), cell(r.agent), cell(r.method), cell(`${r.host}:${r.port}`, 'mono'), cell(r.path || '', 'path'), cell(r.reason, 'reason'), cell(r.rule || '—', 'mono'), cell(r.id, 'mono'))
  const action = document.createElement('td')
  const form = $('#approve-form').content.firstElementChild.cloneNode(true)
  if (r.method === 'CONNECT') form.scope.value = 'host'
  form.addEventListener('submit', (e) => { e.preventDefault(); approve(r, form, tr) })
  form.querySelector('.dismiss-btn').addEventListener('click', () => { state.dismissed.add(r.id); tr.remove(); updateEmpty() })
  if (!r.agent) form.querySelectorAll('input,select,.approve-btn').forEach((el) => { el.disabled = true; el.title = 'only denials of a known agent can be approved' })
  action.append(form)
  tr.append(action)
  return tr
}

function render() {
  const body = $('#blocked tbody')
  const f = filters()
  body.replaceChildren(...[...state.rows.values()].filter((r) => !state.dismissed.has(r.id) && matches(r, f)).reverse().map((r) => renderRow(r, false)))
  updateEmpty()
}

function updateEmpty() {
  $('#blocked-empty').hidden = $('#blocked tbody').children.length > 0
  $('#approvals-empty').hidden = $('#approvals tbody').children.length > 0
}

function addRecord(r) {
  if (r.event !== 'decision' || r.decision !== 'deny' || state.rows.has(r.id)) return
  state.rows.set(r.id, r)
  if (state.rows.size > 2000) state.rows.delete(state.rows.keys().next().value)
  if (!state.dismissed.has(r.id) && matches(r, filters())) {
    $('#blocked tbody').prepend(renderRow(r, true))
    updateEmpty()
  }
}

async function approve(r, form, tr) {
  const body = { request_id: r.id, scope: form.scope.value, ttl: form.ttl.value, reason: form.reason.value, approved_by: 'analyst-page' }
  const res = await api('/api/approvals', { method: 'POST', body: JSON.stringify(body) })
  const out = await res.json().catch(() => ({}))
  if (!res.ok) { alert(`Approval refused: ${out.message || out.error || res.status}`); return }
  tr.classList.add('approved')
  form.replaceChildren(document.createTextNode(`approved (${out.scope}, until ${new Date(out.expires_at).toLocaleString()})`))
  loadApprovals()
}

function fmtLeft(s) {
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
  if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`
  return `${s}s`
}

async function loadApprovals() {
  const res = await api('/api/approvals')
  if (!res.ok) return
  const { approvals } = await res.json()
  $('#approvals tbody').replaceChildren(...approvals.map((a) => {
    const tr = document.createElement('tr')
    tr.dataset.id = a.id
    const revoke = document.createElement('button')
    revoke.textContent = 'Revoke'
    revoke.className = 'revoke-btn'
    revoke.addEventListener('click', async () => { await api(`/api/approvals/${encodeURIComponent(a.id)}`, { method: 'DELETE' }); loadApprovals() })
    const td = document.createElement('td')
    td.append(revoke)
    tr.append(cell(a.agent), cell(a.scope), cell(a.method), cell(`${a.host}:${a.port}`, 'mono'), cell(a.path || '', 'path'), cell(fmtLeft(a.expires_in_s)), cell(a.approved_by), cell(a.reason), td)
    return tr
  }))
  updateEmpty()
}

async function loadRecent() {
  const res = await api('/api/events?decision=deny&limit=200')
  if (res.status === 401) { setStatus('token refused', 'error'); return false }
  if (!res.ok) { setStatus(`events: HTTP ${res.status}`, 'error'); return false }
  const { events } = await res.json()
  for (const r of events.slice().reverse()) state.rows.set(r.id, r)
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
  if (!state.token) { setStatus('enter the admin token'); return }
  sessionStorage.setItem('portcullis-token', state.token)
  if (await loadRecent()) { loadApprovals(); follow() }
}

for (const r of REASONS) $('#f-reason').append(new Option(r, r))
$('#filters').addEventListener('input', render)
$('#clear-filters').addEventListener('click', () => { $('#filters').reset(); render() })
$('#token-form').addEventListener('submit', (e) => { e.preventDefault(); state.token = $('#token').value.trim(); connect() })
setInterval(() => { if (state.token) loadApprovals() }, 5000)
$('#token').value = state.token
connect()
