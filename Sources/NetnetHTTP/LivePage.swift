/// The live view's page, embedded in the binary (the daemon is installed as one file, so no
/// resource bundle): the HTML, its script and its style sheet, written for it with no framework
/// and nothing from another origin (the page's `Content-Security-Policy` allows only 'self').
/// What each part does is said in the script's first lines. Constants; any thread.
enum LivePage {
    /// A file of the page: its media type and text.
    struct File: Sendable {
        let contentType: String
        let text: String
    }

    /// The page's files by request path.
    static let files: [String: File] = [
        "/": File(contentType: "text/html; charset=utf-8", text: page),
        "/live.js": File(contentType: "text/javascript; charset=utf-8", text: script),
        "/live.css": File(contentType: "text/css; charset=utf-8", text: style),
    ]

    /// `/`.
    static let page = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>netnet live</title>
<link rel="stylesheet" href="/live.css">
<script src="/live.js" defer></script>
</head>
<body>
<header>
<h1>netnet</h1>
<a id="back" href="#" hidden>&larr; all streams</a>
<span id="notice"></span>
</header>
<form id="login" hidden>
<label>Token <input id="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button>
<p id="login-error"></p>
</form>
<main id="grid"></main>
<section id="single" hidden>
<div class="large"><img id="large-picture" alt="live picture"></div>
<aside>
<h2 id="large-name"></h2>
<p><span class="state" id="large-state"></span> <span class="fps" id="large-fps"></span></p>
<div class="counts" id="large-counts"></div>
<h3>Last events</h3>
<ol id="events" data-received="0"></ol>
</aside>
</section>
</body>
</html>
"""#

    /// `/live.js`.
    static let script = #"""
'use strict';
// The live view: a grid of the streams (their live.mjpeg pictures, state, fps, counts), polled
// from /api/streams and /api/streams/ID/counts; #stream/ID shows one large with its events from
// /api/events. Authorised by the session cookie of POST /api/login when a token is configured.
const $ = (id) => document.getElementById(id);
const view = { ids: [], info: {}, previous: {}, fps: {}, retryAt: {}, counts: {}, statusEvents: null,
               single: null, singleEvents: null, polling: null, started: false };

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (response.status === 401) throw new Unauthorized(path);
  if (!response.ok) throw new Error(path + ': HTTP ' + response.status);
  return response.json();
}

function showLogin() {
  stopAll();
  $('login').hidden = false; $('grid').hidden = true; $('single').hidden = true; $('back').hidden = true;
  $('token').focus();
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const response = await fetch('/api/login', { method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: $('token').value }) });
  if (response.status === 204) {
    $('token').value = ''; $('login-error').textContent = ''; $('login').hidden = true;
    start();
  } else {
    $('login-error').textContent = response.status === 401 ? 'wrong token' : 'login failed (HTTP ' + response.status + ')';
  }
});

function pictureURL(id) { return '/api/streams/' + encodeURIComponent(id) + '/live.mjpeg'; }

// Shows stream `id`'s live picture in `img`; after an error (daemon restarted), tries again.
function watch(img, id) {
  img.dataset.stream = id;
  img.onerror = () => {
    if (img.dataset.stream !== id) return;
    setTimeout(() => { if (img.dataset.stream === id) img.src = pictureURL(id) + '?retry=' + Date.now(); }, 2000);
  };
  img.src = pictureURL(id);
}

// Stops `img`'s picture stream (and its connection: browsers allow six per host).
function unwatch(img) { delete img.dataset.stream; img.removeAttribute('src'); }

function stateText(id) {
  const info = view.info[id];
  if (!info) return '';
  switch (info.state) {
    case 'backing_off': {
      const retry = view.retryAt[id];
      const left = retry ? Math.max(0, Math.round((retry - Date.now()) / 1000)) : null;
      return left === null ? 'backing off' : 'backing off, retry in ' + left + ' s';
    }
    case 'streaming': return 'streaming';
    case 'stalled': return 'stalled';
    default: return info.state;
  }
}

function sum(object) { return Object.values(object || {}).reduce((a, b) => a + b, 0); }

function countsText(id) {
  const counts = view.counts[id];
  if (!counts) return '';
  const parts = [];
  for (const [name, line] of Object.entries(counts.lines || {})) parts.push(name + ': in ' + sum(line.in) + ' · out ' + sum(line.out));
  for (const [name, zone] of Object.entries(counts.zones || {})) parts.push(name + ': ' + sum(zone.objects) + ' inside');
  return parts.join('  |  ');
}

function tile(id) { return document.querySelector('.tile[data-stream="' + CSS.escape(id) + '"]'); }

function buildGrid() {
  const grid = $('grid');
  grid.replaceChildren();
  for (const id of view.ids) {
    const element = document.createElement('div');
    element.className = 'tile'; element.dataset.stream = id; element.tabIndex = 0;
    const img = document.createElement('img'); img.className = 'picture'; img.alt = id + ' live picture';
    const caption = document.createElement('div'); caption.className = 'caption';
    for (const name of ['name', 'state', 'fps']) {
      const span = document.createElement('span'); span.className = name; caption.append(span);
    }
    caption.querySelector('.name').textContent = id;
    const counts = document.createElement('div'); counts.className = 'counts';
    element.append(img, caption, counts);
    element.addEventListener('click', () => { location.hash = '#stream/' + encodeURIComponent(id); });
    element.addEventListener('keydown', (e) => { if (e.key === 'Enter') element.click(); });
    grid.append(element);
  }
}

function render() {
  for (const id of view.ids) {
    const element = tile(id);
    if (!element) continue;
    element.dataset.state = view.info[id] ? view.info[id].state : '';
    element.querySelector('.state').textContent = stateText(id);
    element.querySelector('.fps').textContent = view.fps[id] === undefined ? '' : view.fps[id].toFixed(1) + ' fps';
    element.querySelector('.counts').textContent = countsText(id);
  }
  const id = view.single;
  if (id !== null) {
    $('large-state').dataset.state = view.info[id] ? view.info[id].state : '';
    $('large-state').textContent = stateText(id);
    $('large-fps').textContent = view.fps[id] === undefined ? '' : view.fps[id].toFixed(1) + ' fps';
    $('large-counts').textContent = countsText(id);
  }
}

async function poll() {
  try {
    const now = performance.now();
    const listing = await api('/api/streams');
    for (const stream of listing.streams) {
      const previous = view.previous[stream.id];
      if (previous && now > previous.at) view.fps[stream.id] = Math.max(0, (stream.frames_inferred - previous.frames) * 1000 / (now - previous.at));
      view.previous[stream.id] = { at: now, frames: stream.frames_inferred };
      view.info[stream.id] = stream;
    }
    const shown = view.single === null ? view.ids : [view.single];
    await Promise.all(shown.map(async (id) => {
      try { view.counts[id] = await api('/api/streams/' + encodeURIComponent(id) + '/counts'); } catch (e) { if (e instanceof Unauthorized) throw e; }
    }));
    $('notice').textContent = '';
    render();
  } catch (error) {
    if (error instanceof Unauthorized) { showLogin(); return; }
    $('notice').textContent = 'daemon unreachable: ' + error.message;
  }
}

function describe(event) {
  const time = (event.time || '').slice(11, 19);
  const what = [event.kind, event.label, event.track_id ? '#' + event.track_id : ''];
  if (event.line) what.push(event.line, event.direction || '');
  if (event.zone) what.push(event.zone);
  if (event.kind === 'loiter' && event.dwell !== undefined) what.push(event.dwell.toFixed(1) + ' s');
  if (event.kind === 'object_end' && event.reason) what.push('(' + event.reason + ')');
  return time + '  ' + what.filter(Boolean).join(' ');
}

function openSingle(id) {
  view.single = id;
  for (const img of document.querySelectorAll('#grid img')) unwatch(img);
  $('grid').hidden = true; $('single').hidden = false; $('back').hidden = false;
  $('large-name').textContent = id;
  const list = $('events');
  list.replaceChildren(); list.dataset.received = '0';
  watch($('large-picture'), id);
  view.singleEvents = new EventSource('/api/events?stream=' + encodeURIComponent(id));
  view.singleEvents.addEventListener('event', (message) => {
    const item = document.createElement('li');
    item.textContent = describe(JSON.parse(message.data));
    list.prepend(item);
    while (list.children.length > 100) list.lastChild.remove();
    list.dataset.received = String(Number(list.dataset.received) + 1);
  });
  render();
}

function openGrid() {
  view.single = null;
  if (view.singleEvents) { view.singleEvents.close(); view.singleEvents = null; }
  unwatch($('large-picture'));
  $('single').hidden = true; $('grid').hidden = false; $('back').hidden = true;
  for (const element of document.querySelectorAll('.tile')) watch(element.querySelector('img'), element.dataset.stream);
  render();
}

function route() {
  const match = location.hash.match(/^#stream\/(.+)$/);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (id !== null && view.ids.includes(id)) { if (view.single !== id) { if (view.single !== null) openGrid(); openSingle(id); } }
  else if (view.single !== null || !view.started) openGrid();
  view.started = true;
}

function stopAll() {
  if (view.polling) { clearInterval(view.polling); view.polling = null; }
  if (view.statusEvents) { view.statusEvents.close(); view.statusEvents = null; }
  if (view.singleEvents) { view.singleEvents.close(); view.singleEvents = null; }
  for (const img of document.querySelectorAll('img')) unwatch(img);
  view.single = null; view.started = false;
}

async function start() {
  let listing;
  try { listing = await api('/api/streams'); } catch (error) {
    if (error instanceof Unauthorized) { showLogin(); return; }
    $('notice').textContent = 'daemon unreachable: ' + error.message;
    setTimeout(start, 3000);
    return;
  }
  view.ids = listing.streams.map((s) => s.id);
  for (const stream of listing.streams) view.info[stream.id] = stream;
  buildGrid();
  // Status lines come at once, with the retry delay that /api/streams does not carry.
  view.statusEvents = new EventSource('/api/events');
  view.statusEvents.addEventListener('status', (message) => {
    const status = JSON.parse(message.data);
    const info = view.info[status.stream];
    if (!info) return;
    info.state = status.state;
    view.retryAt[status.stream] = status.state === 'backing_off' && status.retry_in != null ? Date.now() + status.retry_in * 1000 : null;
    render();
  });
  route();
  poll();
  view.polling = setInterval(poll, 1000);
}

window.addEventListener('hashchange', route);
start();
"""#

    /// `/live.css`.
    static let style = #"""
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #111; color: #ddd; }
header { display: flex; gap: 1em; align-items: baseline; padding: 0.5em 1em; background: #222; }
h1 { font-size: 18px; margin: 0; }
a { color: #8cf; }
#notice { color: #f88; }
#login { padding: 2em; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; padding: 12px; }
.tile { background: #1c1c1c; border: 1px solid #333; cursor: pointer; }
.tile:hover, .tile:focus { border-color: #8cf; outline: none; }
.tile img, .large img { display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #000; }
.caption { padding: 4px 8px; display: flex; gap: 0.8em; }
.counts { padding: 0 8px 6px; color: #bbb; }
.state { font-weight: bold; }
[data-state="streaming"] .state, .state[data-state="streaming"] { color: #6d6; }
[data-state="backing_off"] .state, .state[data-state="backing_off"] { color: #fc6; }
[data-state="stalled"] .state, .state[data-state="stalled"] { color: #f66; }
#single { display: grid; grid-template-columns: 3fr 1fr; gap: 12px; padding: 12px; }
#single[hidden] { display: none; }
aside { background: #1c1c1c; padding: 8px 12px; }
aside h2 { margin: 0 0 4px; }
#events { max-height: 70vh; overflow-y: auto; padding-left: 1.5em; font-family: ui-monospace, monospace; font-size: 12px; }
"""#
}
