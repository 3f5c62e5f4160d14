// kernelgate's notebook page: a small client of the /ws protocol
// (docs/protocol.md). One WebSocket, one named kernel session per tab;
// every journaled message carries a seq, so after a dropped connection the
// page resumes from the last seq it processed and loses nothing.
'use strict';
(() => {
  const KEY_CELLS = 'kernelgate.cells';   // localStorage: the notebook's code
  const KEY_KERNEL = 'kernelgate.kernel'; // sessionStorage: this tab's session

  // h builds an element: h('pre.stream.stdout', {text: 'x'}, child, ...).
  function h(tag, attrs, ...kids) {
    const [name, ...classes] = tag.split('.');
    const el = document.createElement(name || 'div');
    if (classes.length) el.className = classes.join(' ');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k != null) el.append(k);
    return el;
  }
  const $ = (id) => document.getElementById(id);

  // The server strips ANSI already (protocol §1.5); this is the backstop
  // that keeps escape codes off the screen whatever a kernel sends.
  const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;
  const stripAnsi = (s) => String(s).replace(ANSI, '');
  // A carriage return rewinds the line, as progress bars expect.
  const cr = (line) => line.includes('\r') ? line.split('\r').reduce((acc, seg) => seg + acc.slice(seg.length)) : line;
  const randomId = () => Math.random().toString(36).slice(2, 10);
  const fmtTime = (ms) => ms < 1 ? '< 1 ms' : ms < 1000 ? `${Math.round(ms)} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round(ms % 60000 / 1000)} s`;
  const fmtInt = (n) => Number(n).toLocaleString('en-US');

  const nb = {
    cells: [],                 // page order
    byId: new Map(),           // cell id → Cell
    displays: new Map(),       // display_id → element, for display updates
    kernelId: sessionStorage.getItem(KEY_KERNEL),
    lastSeq: 0,                // highest seq processed in this session
    ws: null, open: false, outbox: [], retries: 0, retryTimer: 0,
    phase: 'starting',         // starting | ready | restarting | dead
    active: null,              // run id executing now
    resetting: false, held: [] // executes sent during a reset wait for kernel_reset
  };

  // ---------------------------------------------------------------- cells

  class Cell {
    constructor(id, code, saved) {
      this.id = id;
      this.runN = 0;           // runs are "<cell id>.<n>" on the wire
      this.runId = null;       // the run this cell shows
      this.saved = saved || null; // {id, ms, count} of the last finished run
      this.ta = h('textarea', {rows: 1, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', 'aria-label': 'Code',
        placeholder: 'Python code: Shift+Enter runs it'});
      this.ta.value = code || '';
      this.count = h('span.count', {text: '[ ]'});
      this.time = h('span.time');
      this.out = h('div.output', {'aria-live': 'polite'});
      const tool = (label, title, fn) => h('button', {type: 'button', title, text: label, onclick: fn});
      this.el = h('div.cell', {'data-state': 'idle', 'data-id': id},
        h('div.gutter', {}, this.count, this.time),
        h('div.body', {},
          h('div.editor', {}, this.ta, h('div.tools', {},
            tool('\u25B6', 'Run (Ctrl+Enter)', () => run(this)),
            tool('\u2191', 'Move up', () => move(this, -1)),
            tool('\u2193', 'Move down', () => move(this, 1)),
            tool('+', 'Add a cell below', () => addCell('', this).ta.focus()),
            tool('\u2715', 'Delete', () => removeCell(this)))),
          this.out));
      this.ta.addEventListener('input', () => { this.grow(); save(); });
      this.ta.addEventListener('keydown', (e) => onKey(this, e));
      if (saved && saved.count) this.count.textContent = `[${saved.count}]`;
      this.clear();
    }
    grow() { this.ta.style.height = 'auto'; this.ta.style.height = this.ta.scrollHeight + 'px'; }
    setState(s) {
      this.el.dataset.state = s;
      if (s === 'queued' || s === 'running') this.count.textContent = '[*]';
      if (s === 'queued') this.time.textContent = 'queued';
    }
    clear() {
      this.out.replaceChildren();
      this.stream = null;
      this.plots = new Set();  // plots shown by display_output in this run
      this.time.textContent = '';
    }
    add(el) { this.out.append(el); this.stream = null; return el; }

    start() {
      this.clear();
      this.setState('running');
      this.t0 = performance.now();
      clearInterval(this.tick);
      this.tick = setInterval(() => { this.time.textContent = fmtTime(performance.now() - this.t0); }, 100);
    }
    stop(state) {
      clearInterval(this.tick);
      this.setState(state);
      // A prompt left unanswered (interrupted, died) cannot be answered now.
      for (const box of this.out.querySelectorAll('.stdin')) { box.remove(); this.write('stdout', box.dataset.prompt + '\n'); }
    }

    // Stream text goes into one <pre> per run of same-stream chunks. Whole
    // lines are appended once; only the unfinished last line is redrawn.
    write(name, text) {
      let s = this.stream;
      if (!s || s.name !== name || s.pre !== this.out.lastChild) {
        const tail = document.createTextNode('');
        s = this.stream = {name, pre: h('pre.stream.' + name, {}, tail), tail, line: ''};
        this.out.append(s.pre);
      }
      let buf = s.line + stripAnsi(text);
      const nl = buf.lastIndexOf('\n');
      if (nl >= 0) {
        s.pre.insertBefore(document.createTextNode(buf.slice(0, nl + 1).split('\n').map(cr).join('\n')), s.tail);
        buf = buf.slice(nl + 1);
      }
      s.line = buf;
      s.tail.data = cr(buf);
    }

    display(m) {
      const id = m.transient && m.transient.display_id;
      const el = renderBundle(m.data || {}) || h('span');
      if (m.plot) this.plots.add(m.plot);
      const old = id && nb.displays.get(id);
      if (old && old.isConnected) { old.replaceWith(el); this.stream = null; } else this.add(el);
      if (id) nb.displays.set(id, el);
    }

    ask(prompt, password) {
      const input = h('input', {type: password ? 'password' : 'text', autocomplete: 'off', spellcheck: 'false', 'aria-label': prompt || 'Input'});
      const box = h('div.stdin', {'data-prompt': prompt}, h('span', {text: prompt}), input);
      input.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter') return;
        e.preventDefault();
        send({type: 'provide_input', input: input.value});
        // The answer joins the text like a terminal echo (the kernel echoes nothing).
        box.remove();
        this.write('stdout', prompt + (password ? '\u2022'.repeat(Math.min(input.value.length, 12)) : input.value) + '\n');
      });
      this.out.append(box); // after the stream, which goes on once the box is gone
      input.focus();
    }

    finish(m) {
      const ok = m.status === 'ok';
      this.stop(ok ? 'done' : 'error');
      const count = m.execution_count || 0;
      this.count.textContent = count ? `[${count}]` : '[ ]';
      // Replayed runs (after a reload) have no live start: keep their saved time.
      const ms = this.saved && this.saved.id === m.cell_id ? this.saved.ms : this.t0 ? performance.now() - this.t0 : 0;
      this.time.textContent = fmtTime(ms);
      this.saved = {id: m.cell_id, ms, count};
      save();
      if (ok) this.showResult(m);
      else this.add(errorEl(m.error_details || {ename: 'Error', evalue: m.error}));
      // null means the server could not read them (e.g. right after an
      // interrupt): keep the last good list rather than show an empty one.
      if (m.variables && typeof m.variables === 'object') showVars(m.variables);
    }

    // The last expression's value: a table, a plot the kernel returned
    // (plots holds it after what was displayed), or its text.
    showResult(m) {
      const t = m.table_result;
      if (t && Array.isArray(t.data)) {
        this.add(tableEl(t.columns || [], t.data, t.shape, t.truncated));
        return;
      }
      const last = (m.plots || []).at(-1);
      if (last && !this.plots.has(last) && m.result != null) {
        if (last.startsWith('data:image/')) { this.add(h('img', {src: last, alt: 'result'})); return; }
        if (!/^\s*<html/i.test(last)) { this.add(htmlEl(last)); return; }
      }
      if (m.result != null) this.add(h('pre.result', {text: typeof m.result === 'string' ? m.result : JSON.stringify(m.result, null, 2)}));
    }

    fail(text) {
      this.stop('error');
      this.add(h('pre.error', {}, h('span.last', {text})));
    }
  }

  // ------------------------------------------------------------- rendering

  function renderBundle(d) {
    const s = (v) => Array.isArray(v) ? v.join('') : v; // Jupyter may split strings into lines
    if (d['application/vnd.plotly.v1+json']) return plotlyEl(d['application/vnd.plotly.v1+json'], d);
    if (d['application/vnd.dataresource+json']) return resourceEl(d['application/vnd.dataresource+json'], s(d['text/html']));
    if (d['image/png']) return h('img', {src: 'data:image/png;base64,' + s(d['image/png']).replace(/\s/g, ''), alt: s(d['text/plain']) || 'plot'});
    if (d['image/jpeg']) return h('img', {src: 'data:image/jpeg;base64,' + s(d['image/jpeg']).replace(/\s/g, ''), alt: 'image'});
    if (d['image/svg+xml']) return h('img', {src: 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(s(d['image/svg+xml'])), alt: 'image'});
    if (d['text/html']) return htmlEl(s(d['text/html']));
    for (const t of ['text/markdown', 'text/latex', 'text/plain']) if (d[t] != null) return h('pre.result', {text: stripAnsi(s(d[t]))});
    if (d['application/json'] !== undefined) return h('pre.result', {text: JSON.stringify(d['application/json'], null, 2)});
    return null;
  }

  // Output HTML goes into the page as-is: the Content-Security-Policy keeps
  // any script in it from running.
  function htmlEl(html) { const el = h('div.html'); el.innerHTML = html; return el; }

  let plotly = null; // one load of the server's plotly.js, on first use
  function plotlyEl(fig, bundle) {
    const div = h('div.plotly');
    plotly = plotly || new Promise((resolve, reject) => {
      document.head.append(h('script', {src: 'static/plotly.js', onload: () => resolve(window.Plotly),
        onerror: () => reject(new Error('plotly.js is not installed on this server'))}));
    });
    plotly.then((P) => P.newPlot(div, fig.data || [], Object.assign({autosize: true}, fig.layout),
      Object.assign({}, fig.config, {responsive: true, displaylogo: false})))
      .catch((e) => {
        const rest = Object.assign({}, bundle);
        delete rest['application/vnd.plotly.v1+json'];
        div.replaceWith(renderBundle(rest) || h('pre.warn', {text: `plotly figure not shown: ${e.message}`}));
      });
    return div;
  }

  function cellText(v) {
    if (v === null || v === undefined) return h('span.null', {text: 'NaN'});
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }

  // columns: [{key, label, index?}]; shape: [rows, cols] of the whole table.
  function tableEl(columns, rows, shape, truncated) {
    const head = h('tr', {}, columns.map((c) => h('th', {text: c.label ?? c.key})));
    const body = rows.map((r) => h('tr', {}, columns.map((c) => h(c.index ? 'th' : 'td', {}, cellText(r[c.key])))));
    const total = shape ? shape[0] : rows.length;
    const ncols = shape ? shape[1] : columns.filter((c) => !c.index).length;
    let info = `${fmtInt(total)} rows \u00d7 ${fmtInt(ncols)} columns`;
    if (truncated || total > rows.length) info += ` (showing the first ${fmtInt(rows.length)})`;
    return h('div.table', {},
      h('div.table-wrap', {}, h('table.df', {}, h('thead', {}, head), h('tbody', {}, body))),
      h('div.table-info', {text: info}));
  }

  // A pandas table schema bundle. It holds only the rows pandas shows, so
  // the true size comes from the "N rows × M columns" line of its HTML.
  function resourceEl(res, html) {
    const keys = new Set([].concat((res.schema && res.schema.primaryKey) || []));
    const columns = ((res.schema && res.schema.fields) || []).map((f) => ({key: f.name, label: keys.has(f.name) && f.name === 'index' ? '' : f.name, index: keys.has(f.name)}));
    const rows = res.data || [];
    const m = /([\d,]+) rows \u00d7 ([\d,]+) columns/.exec(html || '');
    const shape = m ? [Number(m[1].replace(/,/g, '')), Number(m[2].replace(/,/g, ''))] : null;
    return tableEl(columns, rows, shape, shape && shape[0] > rows.length);
  }

  function errorEl(d) {
    const pre = h('pre.error');
    let tb = (d.traceback || []).map(stripAnsi);
    if (tb.length && /^-+$/.test(tb[0])) tb = tb.slice(1);
    if (!tb.length) tb = [`${d.ename || 'Error'}: ${d.evalue || ''}`];
    tb.forEach((line, i) => {
      const cls = i === tb.length - 1 || line.startsWith(d.ename) && i === 0 ? 'span.last' : /^-+>/.test(line) ? 'span.hl' : 'span';
      pre.append(h(cls, {text: line + (i < tb.length - 1 ? '\n' : '')}));
    });
    return pre;
  }

  // --------------------------------------------------------------- editor

  function onKey(cell, e) {
    const ta = cell.ta;
    if (e.key === 'Enter' && e.shiftKey) {
      e.preventDefault();
      run(cell);
      const next = nb.cells[nb.cells.indexOf(cell) + 1] || addCell('');
      next.ta.focus();
    } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run(cell);
    } else if (e.key === 'Enter' && !e.altKey) {
      // Keep the indentation, and indent after a colon.
      e.preventDefault();
      const before = ta.value.slice(0, ta.selectionStart);
      const line = before.slice(before.lastIndexOf('\n') + 1);
      const indent = /^\s*/.exec(line)[0] + (/:\s*$/.test(line) ? '    ' : '');
      insert(ta, '\n' + indent);
    } else if (e.key === 'Tab' && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      indent(ta, e.shiftKey);
    } else if (e.key === 'Escape') {
      ta.blur();
    }
  }

  // insertText keeps the browser's undo history; setRangeText is the fallback.
  function insert(ta, text) {
    if (!document.execCommand('insertText', false, text)) {
      ta.setRangeText(text, ta.selectionStart, ta.selectionEnd, 'end');
      ta.dispatchEvent(new Event('input'));
    }
  }

  function indent(ta, out) {
    const {selectionStart: a, selectionEnd: b, value} = ta;
    if (a === b && !out) { insert(ta, '    '); return; }
    const start = value.lastIndexOf('\n', a - 1) + 1;
    const end = b > a && value[b - 1] === '\n' ? b - 1 : b;
    const lines = value.slice(start, end).split('\n');
    const changed = lines.map((l) => out ? l.replace(/^ {1,4}|^\t/, '') : '    ' + l).join('\n');
    ta.setSelectionRange(start, end);
    insert(ta, changed);
    ta.setSelectionRange(start, start + changed.length);
  }

  // ------------------------------------------------------------- notebook

  function addCell(code, after, id, saved) {
    const cell = new Cell(id || 'c' + randomId(), code, saved);
    const i = after ? nb.cells.indexOf(after) + 1 : nb.cells.length;
    nb.cells.splice(i, 0, cell);
    nb.byId.set(cell.id, cell);
    const ref = nb.cells[i + 1];
    $('cells').insertBefore(cell.el, ref ? ref.el : null);
    cell.grow();
    save();
    return cell;
  }

  function removeCell(cell) {
    const i = nb.cells.indexOf(cell);
    nb.cells.splice(i, 1);
    nb.byId.delete(cell.id);
    cell.el.remove();
    clearInterval(cell.tick);
    if (!nb.cells.length) addCell('');
    (nb.cells[i] || nb.cells[i - 1]).ta.focus();
    save();
  }

  function move(cell, by) {
    const i = nb.cells.indexOf(cell), j = i + by;
    if (j < 0 || j >= nb.cells.length) return;
    nb.cells.splice(i, 1);
    nb.cells.splice(j, 0, cell);
    const ref = nb.cells[j + 1];
    $('cells').insertBefore(cell.el, ref ? ref.el : null);
    cell.ta.focus();
    save();
  }

  // save writes the notebook at most every 200 ms while typing, and at
  // once when the page goes away.
  let saveTimer = 0;
  function save() {
    if (!saveTimer) saveTimer = setTimeout(flush, 200);
  }
  function flush() {
    clearTimeout(saveTimer);
    saveTimer = 0;
    try {
      localStorage.setItem(KEY_CELLS, JSON.stringify(nb.cells.map((c) => ({id: c.id, code: c.ta.value, run: c.saved}))));
    } catch (e) { /* storage full or disabled: the notebook still works */ }
  }

  function load() {
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(KEY_CELLS)); } catch (e) { /* ignore a bad entry */ }
    if (Array.isArray(saved) && saved.length) {
      for (const c of saved) if (c && typeof c.id === 'string') addCell(String(c.code || ''), null, c.id, c.run);
    }
    if (!nb.cells.length) addCell('');
  }

  function run(cell) {
    if (!cell.ta.value.trim()) return;
    const runId = `${cell.id}.${++cell.runN}`;
    cell.runId = runId;
    cell.el.dataset.runs = String(cell.runN);  // tests tell runs apart by it
    cell.clear();
    cell.setState('queued');
    const msg = {type: 'execute', cell_id: runId, code: cell.ta.value, language: 'python', streaming: false};
    if (nb.resetting) nb.held.push(msg); else send(msg);
  }

  // The cell a message is about, if it is about the run that cell shows.
  // execution_start adopts a newer run (replays after a reload).
  function cellOf(m, adopt) {
    const runId = m.cell_id || '';
    const dot = runId.lastIndexOf('.');
    const cell = nb.byId.get(runId.slice(0, dot));
    if (!cell) return null;
    if (adopt) {
      const n = Number(runId.slice(dot + 1));
      if (n < cell.runN) return null;
      cell.runN = n;
      cell.runId = runId;
    }
    return cell.runId === runId ? cell : null;
  }

  // --------------------------------------------------------------- kernel

  function refreshKernel() {
    const state = !nb.open ? 'disconnected' : nb.phase !== 'ready' ? nb.phase : nb.active ? 'busy' : 'idle';
    $('kernel-dot').dataset.state = state;
    $('kernel-state').textContent = state;
    $('interrupt').disabled = !nb.open;
    $('restart').disabled = !nb.open;
  }

  function showVars(vars) {
    const rows = Object.entries(vars || {}).map(([name, v]) => {
      const [type, shown] = describe(v);
      return h('tr', {}, h('td.name', {text: name, title: name}), h('td.type', {text: type, title: type}), h('td.val', {text: shown, title: shown}));
    });
    $('vars-body').replaceChildren(...rows);
    $('vars-empty').hidden = rows.length > 0;
  }

  // describe gives a variable's type and its shape or a preview. Small
  // values arrive as themselves, large ones as {type, shape|length|repr}.
  function describe(v) {
    const short = (s) => s.length > 80 ? s.slice(0, 79) + '\u2026' : s;
    if (v === null) return ['None', 'None'];
    if (typeof v === 'number') return [Number.isInteger(v) ? 'int' : 'float', String(v)];
    if (typeof v === 'boolean') return ['bool', v ? 'True' : 'False'];
    if (typeof v === 'string') return ['str', short(JSON.stringify(v))];
    if (Array.isArray(v)) return ['list', `len ${v.length}: ${short(JSON.stringify(v))}`];
    if (typeof v.type === 'string' && ['shape', 'length', 'repr', 'bits', 'error', 'truncated'].some((k) => k in v)) {
      const type = v.type + (v.dtype ? ` ${v.dtype}` : '');
      if (v.shape) return [type, v.shape.map(fmtInt).join(' \u00d7 ')];
      if (v.length != null) return [type, `len ${fmtInt(v.length)}`];
      if (v.bits) return [type, `${v.bits} bits`];
      return [type, short(v.error ? 'error: ' + v.error : String(v.repr ?? ''))];
    }
    return ['dict', `${Object.keys(v).length} keys: ${short(JSON.stringify(v))}`];
  }

  let noticeTimer = 0;
  function notice(text, sticky) {
    const el = $('notice');
    clearTimeout(noticeTimer);
    el.dataset.kind = '';
    el.textContent = text;
    el.hidden = !text;
    if (text && !sticky) noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
  }

  // ----------------------------------------------------------- connection

  function send(m) {
    if (nb.open) nb.ws.send(JSON.stringify(m)); else nb.outbox.push(m);
  }

  function newSession() {
    nb.kernelId = 'nb-' + randomId() + randomId();
    sessionStorage.setItem(KEY_KERNEL, nb.kernelId);
    nb.lastSeq = 0;
    nb.phase = 'starting';
    nb.active = null;
    nb.ws.send(JSON.stringify({type: 'start_kernel_session', kernel_id: nb.kernelId}));
  }

  function connect() {
    clearTimeout(nb.retryTimer);
    const url = new URL('ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = url.hash = '';
    const ws = nb.ws = new WebSocket(url.href);
    ws.onopen = () => {
      nb.open = true;
      nb.retries = 0;
      if (nb.kernelId) {
        // Everything after lastSeq (0 after a reload: the whole journal).
        ws.send(JSON.stringify({type: 'resume', kernel_id: nb.kernelId, last_seq: nb.lastSeq}));
        if (nb.phase === 'starting') nb.phase = 'ready';
      } else newSession();
      for (const m of nb.outbox.splice(0)) ws.send(JSON.stringify(m));
      if ($('notice').dataset.kind === 'connection') notice('');
      refreshKernel();
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      handle(m);
    };
    ws.onclose = () => {
      if (nb.ws !== ws) return;
      nb.open = false;
      refreshKernel();
      const delay = Math.min(3000, 250 * 2 ** nb.retries++);
      nb.retryTimer = setTimeout(connect, delay);
      if (nb.retries > 1) { notice('Connection lost; reconnecting\u2026', true); $('notice').dataset.kind = 'connection'; }
    };
  }

  function handle(m) {
    if (typeof m.seq === 'number') {
      if (m.seq <= nb.lastSeq) return; // already processed (a resume overlaps)
      nb.lastSeq = m.seq;
    }
    const end = (cell) => { if (nb.active === m.cell_id) nb.active = null; return cell; };
    let cell;
    switch (m.type) {
      case 'kernel_session_started':
        nb.phase = 'ready';
        break;
      case 'execution_start':
        nb.active = m.cell_id;
        if (nb.phase === 'starting') nb.phase = 'ready';
        if ((cell = cellOf(m, true))) cell.start();
        break;
      case 'stream_output':
        // The final is_last copy repeats what was streamed; execution_result ends the cell.
        if (!m.is_last && (cell = cellOf(m))) cell.write(m.stream === 'stderr' ? 'stderr' : 'stdout', m.content || '');
        break;
      case 'display_output':
        if ((cell = cellOf(m))) cell.display(m);
        break;
      case 'input_request':
        if ((cell = cellOf(m))) cell.ask(m.prompt || '', !!m.password);
        break;
      case 'execution_result':
      case 'execution_error':
        if ((cell = end(cellOf(m)))) cell.finish(m.type === 'execution_error' ? {cell_id: m.cell_id, status: 'error', error_details: m.error} : m);
        break;
      case 'execution_cancelled':
        // A queued cell dropped before it started ends here; a running one
        // still gets its KeyboardInterrupt result.
        if ((cell = cellOf(m)) && cell.el.dataset.state === 'queued') {
          cell.stop('idle');
          cell.count.textContent = '[ ]';
          cell.time.textContent = 'cancelled';
        }
        break;
      case 'kernel_reset':
        nb.resetting = false;
        nb.phase = 'ready';
        showVars({});
        for (const held of nb.held.splice(0)) send(held);
        break;
      case 'kernel_status':
        nb.phase = m.event === 'died' ? 'dead' : m.event === 'restarting' ? 'restarting' : 'ready';
        if (m.state_lost) showVars({});
        if (m.event === 'died') notice(m.reason || 'The kernel died.', true);
        else if (m.event === 'restarted') notice('The kernel restarted; its variables are gone.');
        break;
      case 'error':
        onError(m, end);
        break;
    }
    refreshKernel();
  }

  function onError(m, end) {
    const text = m.error || 'error';
    if (m.cell_id) {
      const cell = cellOf(m);
      if (m.is_last) { end(); if (cell) cell.fail(text); } // the cell never ran
      else if (cell) cell.add(h('pre.warn', {text}));
      return;
    }
    if (/^no session .* to resume/.test(text) || /^resume: last_seq/.test(text)) {
      // The session (and its variables) is gone: the server was restarted
      // or the page was away longer than --session-ttl.
      for (const c of nb.cells) if (['queued', 'running'].includes(c.el.dataset.state)) c.fail('The kernel session ended before this cell finished.');
      showVars({});
      notice('The kernel session had ended, so a new kernel was started: run your cells again.', true);
      if (nb.open) newSession();
      return;
    }
    if (/^kernel reset failed/.test(text)) nb.resetting = false;
    notice(text);
  }

  // ------------------------------------------------------------- controls

  function runAll() { for (const c of nb.cells) run(c); }

  function wire() {
    $('run-all').addEventListener('click', runAll);
    $('interrupt').addEventListener('click', () => send({type: 'interrupt'}));
    $('restart').addEventListener('click', () => {
      nb.resetting = true;
      nb.phase = 'restarting';
      refreshKernel();
      send({type: 'reset_kernel'});
    });
    $('add-cell').addEventListener('click', () => addCell('').ta.focus());
    $('toggle-vars').addEventListener('click', (e) => {
      const on = document.querySelector('main').classList.toggle('no-vars');
      e.currentTarget.setAttribute('aria-pressed', String(!on));
    });
    window.addEventListener('resize', () => nb.cells.forEach((c) => c.grow()));
    window.addEventListener('pagehide', flush);
  }

  wire();
  load();
  refreshKernel();
  connect();
})();
