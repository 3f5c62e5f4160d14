package notebook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/kernelgate/kernelgate/internal/app"
	"github.com/kernelgate/kernelgate/internal/config"
)

// waitTimeout bounds every wait on the page: generous, because a loaded
// machine starts kernels slowly; a passing run waits far less.
const waitTimeout = 60 * time.Second

// pageTimeout bounds everything one page of a subtest does (a subtest takes
// a few seconds; this is for a machine under heavy load).
const pageTimeout = 4 * time.Minute

// TestNotebookInBrowser drives the page in a real Chromium against a real
// kernelgate (app.Serve) with real ipykernels. One browser and one server
// serve every subtest; each subtest has its own browser context (storage,
// cookies) and therefore its own kernel session.
func TestNotebookInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: starts Chromium and kernels (not run with -short)")
	}
	b := newBrowser(t)
	base := startServer(t, "")
	flags := t.TempDir() // files the cells wait on, so the test decides when they go on

	t.Run("print, Shift+Enter and the editor", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.setCode(0, "print('hello')")
		p.key(kb.Enter, chromedp.ModifierShift)
		p.waitCell(0, "done")
		p.expectOutput(0, "hello\n")
		p.expect("the count and time", `cell(0).querySelector('.count').textContent === '[1]' && /\d+ (ms|s)$/.test(cell(0).querySelector('.time').textContent)`)
		// Shift+Enter moved on to a new cell; Enter keeps the indentation, Tab indents.
		p.expect("a second, focused cell", `cells().length === 2 && document.activeElement === cell(1).querySelector('textarea')`)
		p.key("if True:")
		p.key(kb.Enter)
		p.key(kb.Tab)
		p.expect("auto-indent after a colon, then a tab", `cell(1).querySelector('textarea').value === 'if True:\n        '`)
		p.expect("the kernel idle", `kernelState() === 'idle'`)
	})

	t.Run("output streams while the cell runs", func(t *testing.T) {
		p := b.open(t, base+"/")
		flag := filepath.Join(flags, "stream")
		p.run(0, fmt.Sprintf(`import os, time
for i in range(3):
    print('line', i, flush=True)
    time.sleep(0.1)
while not os.path.exists(%q):
    time.sleep(0.02)
print('last line')`, flag))
		p.wait("the first line", `outputText(0).includes('line 0')`)
		// The last line cannot have been printed: the cell waits for the flag.
		p.expect("a running cell without its last line", `!outputText(0).includes('last line') && cell(0).dataset.state === 'running' && kernelState() === 'busy'`)
		touch(t, flag)
		p.waitCell(0, "done")
		p.expectOutput(0, "line 0\nline 1\nline 2\nlast line\n")
	})

	t.Run("a plot appears as soon as it is shown", func(t *testing.T) {
		p := b.open(t, base+"/")
		flag := filepath.Join(flags, "plot")
		p.run(0, fmt.Sprintf(`import os, time
import matplotlib.pyplot as plt
plt.plot([1, 3, 2]); plt.title('demo'); plt.show()
while not os.path.exists(%q):
    time.sleep(0.02)
print('done')`, flag))
		p.wait("a rendered image", `(() => { const img = cell(0).querySelector('.output img'); return img && img.complete && img.naturalWidth > 0; })()`)
		p.expect("the cell still running", `cell(0).dataset.state === 'running'`)
		touch(t, flag)
		p.waitCell(0, "done")
	})

	t.Run("input() and getpass()", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.run(0, "name = input('Name? ')\nprint('Hi', name)\nimport getpass\npw = getpass.getpass('Password: ')\nprint(len(pw), 'characters')")
		p.wait("a focused input box", `document.activeElement && document.activeElement.matches('.stdin input[type=text]')`)
		p.key("Ada" + kb.Enter)
		p.wait("a focused password box", `document.activeElement && document.activeElement.matches('.stdin input[type=password]')`)
		p.key("secret" + kb.Enter)
		p.waitCell(0, "done")
		p.expectOutput(0, "Name? Ada\nHi Ada\nPassword: \u2022\u2022\u2022\u2022\u2022\u2022\n6 characters\n")
	})

	t.Run("interrupt", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.run(0, "import time\nprint('sleeping', flush=True)\ntime.sleep(100)")
		p.wait("the cell sleeping", `outputText(0).includes('sleeping') && kernelState() === 'busy'`)
		p.click("#interrupt")
		p.waitCell(0, "error")
		p.expect("a KeyboardInterrupt and an idle kernel", `outputText(0).includes('KeyboardInterrupt') && kernelState() === 'idle'`)
	})

	t.Run("restart clears the variables", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.run(0, "x = 42\nwords = ['a', 'b']")
		p.waitCell(0, "done")
		p.expect("x in the variables panel", `varRow('x') === 'x int 42' && varRow('words').startsWith('words list len 2')`)
		p.click("#restart")
		p.wait("an idle kernel and no variables", `kernelState() === 'idle' && document.querySelectorAll('#vars-body tr').length === 0`)
		p.run(0, "print(x)")
		p.waitCell(0, "error")
		p.expect("a NameError", `outputText(0).includes("NameError: name 'x' is not defined")`)
	})

	t.Run("reconnects and resumes without losing output", func(t *testing.T) {
		p := b.open(t, base+"/")
		flag, done := filepath.Join(flags, "resume"), filepath.Join(flags, "resume-done")
		p.run(0, fmt.Sprintf(`import os, time
print('before', flush=True)
while not os.path.exists(%q):
    time.sleep(0.02)
print('after', flush=True)
open(%q, 'w').close()`, flag, done))
		p.wait("the first line", `outputText(0).includes('before')`)
		// Drop the connection and keep the page from reconnecting until the
		// cell has finished, so everything after 'before' must come from the
		// resume.
		p.eval(`window.__blockWS = true; window.__sockets.at(-1).close(); true`)
		p.wait("the disconnected state", `kernelState() === 'disconnected'`)
		touch(t, flag)
		waitFile(t, done)
		p.eval(`window.__blockWS = false; true`)
		p.waitCell(0, "done")
		p.expectOutput(0, "before\nafter\n")
		p.expect("a resume on a new socket", `window.__sockets.filter((s) => s.url.endsWith('/ws')).length === 2 && kernelState() === 'idle'`)
		// The kernel kept its state: the page is on the same session.
		p.run(0, "print('os' in globals())")
		p.waitCell(0, "done")
		p.expectOutput(0, "True\n")
	})

	t.Run("reload restores the notebook", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.run(0, "y = 7\nprint('y is', y)")
		p.waitCell(0, "done")
		if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		p.wait("the replayed output", `cells().length === 1 && outputText(0) === 'y is 7\n' && cell(0).querySelector('.count').textContent === '[1]' && kernelState() === 'idle'`)
		p.run(0, "print(y * 6)")
		p.waitCell(0, "done")
		p.expectOutput(0, "42\n")
	})

	t.Run("text, plot, plotly and tables", func(t *testing.T) {
		p := b.open(t, base+"/")
		p.setCells(screenshotCells)
		p.click("#run-all")
		for i := range screenshotCells {
			p.waitCell(i, "done")
		}
		p.expect("the summary line", `outputText(0).startsWith('12 months, total revenue')`)
		p.wait("the plot", `(() => { const img = cell(1).querySelector('.output img'); return img && img.complete && img.naturalWidth > 0; })()`)
		p.expect("the result table with its size", `cell(2).querySelectorAll('table.df tbody tr').length === 5 && cell(2).querySelector('.table-info').textContent === '5 rows × 3 columns'`)
		p.wait("the plotly figure", `cell(3).querySelector('.plotly .main-svg') !== null`)
		p.expect("the displayed frame, cut, with its true size", `cell(4).querySelector('.table-info').textContent.startsWith('1,000 rows × 2 columns (showing the first ')`)
		p.expect("the variables panel", `varRow('sales').startsWith('sales DataFrame 12 × 3')`)
		shot := p.screenshot()
		cfg, err := png.DecodeConfig(bytes.NewReader(shot))
		if err != nil || cfg.Width < 1000 {
			t.Fatalf("screenshot: %v, %dx%d", err, cfg.Width, cfg.Height)
		}
		path := filepath.Join(t.ArtifactDir(), "notebook.png")
		if env := os.Getenv("KERNELGATE_SCREENSHOT"); env != "" {
			path = env
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	})

	t.Run("token login", func(t *testing.T) {
		const token = "notebook-test-token-0123456789"
		authed := startServer(t, token)
		// Without a token or cookie the browser gets a sign-in form; a
		// wrong token gets it again, saying so.
		p := b.open(t, authed+"/")
		p.expect("a sign-in form", `document.querySelector('form input[name=token]') !== null && document.querySelectorAll('script').length === 0`)
		signIn := func(tok string) {
			t.Helper()
			if err := chromedp.Do(p.ctx, chromedp.SendKeys(chromedp.CSS(`input[name=token]`), tok), chromedp.Submit(chromedp.CSS(`form`))); err != nil {
				t.Fatal(err)
			}
		}
		signIn("not-the-token-0123456789")
		p.waitNav("the form again, saying no", `document.body.textContent.includes('not accepted') && document.querySelector('input[name=token]') !== null`)
		// Signing in through the form, as a person does.
		signIn(token)
		p.waitNav("the notebook, with the token gone from the URL", fmt.Sprintf(`location.href === %q && document.querySelector('#run-all') !== null`, authed+"/"))
		cookies, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{authed + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cookies.Cookies) != 1 {
			t.Fatalf("%d cookies, want 1", len(cookies.Cookies))
		}
		c := cookies.Cookies[0]
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || strings.Contains(c.Value, token) {
			t.Errorf("cookie %s: HttpOnly=%v SameSite=%q, holds the token: %v; want HttpOnly, Strict, no token",
				c.Name, c.HTTPOnly, c.SameSite, strings.Contains(c.Value, token))
		}
		p.expect("no cookie visible to scripts", `document.cookie === ''`)
		p.run(0, "print('hello')")
		p.waitCell(0, "done")
		p.expectOutput(0, "hello\n")
		p.expect("no token in the socket URL", `window.__sockets.every((s) => !s.url.includes('token'))`)
	})
}

var screenshotCells = []string{
	`import numpy as np, pandas as pd
months = pd.date_range('2024-01-01', periods=12, freq='MS')
sales = pd.DataFrame({'month': months.strftime('%b'),
                      'revenue': np.round(150 + np.arange(12) * 14 + np.sin(np.arange(12)) * 25, 1),
                      'orders': 40 + np.arange(12) * 3})
print(f'{len(sales)} months, total revenue {sales.revenue.sum():,.1f}')`,
	`import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.bar(sales.month, sales.revenue, color='#2f6feb')
ax.set_title('Revenue by month'); ax.grid(axis='y', alpha=.3)
plt.show()`,
	`sales.sort_values('revenue', ascending=False).head(5)`,
	`import plotly.express as px
px.line(sales, x='month', y='orders', markers=True, height=260, title='Orders').show()`,
	`display(pd.DataFrame({'n': range(1000), 'square': [i * i for i in range(1000)]}))`,
}

// pageHelpers are defined in every page (before its own scripts), so that
// waits read as sentences. The WebSocket wrapper records the page's
// sockets and, while __blockWS is set, points new ones at a closed port.
const pageHelpers = `
window.__sockets = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = new Proxy(NativeWebSocket, {construct(target, args) {
  if (window.__blockWS) args = ['ws://127.0.0.1:9/'];
  const ws = Reflect.construct(target, args);
  window.__sockets.push(ws);
  return ws;
}});
window.cells = () => [...document.querySelectorAll('.cell')];
window.cell = (i) => cells()[i];
window.outputText = (i) => cell(i).querySelector('.output').innerText;
window.kernelState = () => document.getElementById('kernel-state').textContent;
window.varRow = (name) => {
  const row = [...document.querySelectorAll('#vars-body tr')].find((r) => r.cells[0].textContent === name);
  return row ? [...row.cells].map((c) => c.textContent).join(' ') : '';
};
window.pageState = () => 'kernel ' + kernelState() + '; notice ' + JSON.stringify(document.getElementById('notice').textContent) + '\n' +
  cells().map((c, i) => '  cell ' + i + ' ' + c.dataset.state + ' ' + c.querySelector('.count').textContent + ': ' +
    JSON.stringify(c.querySelector('.output').innerText)).join('\n');
`

type browser struct{ ctx context.Context }

// newBrowser starts headless Chromium with the flags this machine needs
// (docs: shared/reference/dependencies.md §7).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := os.Getenv("KERNELGATE_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("Chromium not found at %s (run `make test-deps`, or set KERNELGATE_CHROMIUM): %v", path, err)
	}
	dir, err := os.MkdirTemp("", "kernelgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in containers
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(dir) // best effort: Chromium may still be flushing it
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &browser{ctx: ctx}
}

// startServer runs kernelgate in-process, as the binary does, on a free
// loopback port; token turns authentication on.
func startServer(t *testing.T, token string) string {
	t.Helper()
	runtime, err := os.MkdirTemp("", "kg-nb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runtime) })
	args := []string{"--addr", "127.0.0.1:0", "--runtime-dir", runtime, "--sandbox", "none", "--session-ttl", "2m"}
	getenv := func(k string) string {
		if k == "KERNELGATE_TOKEN" {
			return token
		}
		return ""
	}
	cfg, _, err := config.Load("kernelgate", args, getenv, append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan string, 1)
	go func() { done <- app.Serve(ctx, cfg, log, func(addr string) { ready <- addr }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("app.Serve: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("app.Serve did not return after the cancel")
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("app.Serve: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("the server was not ready in time")
	}
	return ""
}

type notebookPage struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// open loads url in a fresh browser context and waits for the kernel when
// the page is the notebook. The page must throw no exception and break no
// Content-Security-Policy rule.
func (b *browser) open(t *testing.T, url string) *notebookPage {
	t.Helper()
	tab, closeTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageHelpers}); err != nil {
		t.Fatal(err)
	}
	// Every action on the page runs under one deadline: chromedp's queries
	// otherwise wait for their node forever, and a page that never shows
	// it would hang the test until go test's own timeout.
	ctx, cancelDeadline := context.WithTimeout(tab, pageTimeout)
	cancel := func() { cancelDeadline(); closeTab() }
	p := &notebookPage{t: t, ctx: ctx}
	var wg sync.WaitGroup
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, m := range p.console {
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
				t.Errorf("page console: %s", m)
			}
		}
	})
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status == http.StatusOK {
		p.wait("an idle kernel", `kernelState() === 'idle'`)
	}
	return p
}

func (p *notebookPage) eval(js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[any](js)); err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
}

// wait polls cond until it holds.
func (p *notebookPage) wait(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout))); err != nil {
		p.t.Fatalf("waiting for %s (%s): %v\n%s", what, cond, err, p.state())
	}
}

// waitNav is wait across a navigation: the page's JavaScript context is
// replaced under the poll, which then fails and is started again.
func (p *notebookPage) waitNav(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, time.Until(deadline)+time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		cancel()
		switch {
		case err == nil:
			return
		case time.Now().Before(deadline) && (strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "context was destroyed") || strings.Contains(err.Error(), "navigated or closed")):
			continue
		default:
			p.t.Fatalf("waiting for %s (%s): %v\n%s", what, cond, err, p.state())
		}
	}
}

// expect checks cond now.
func (p *notebookPage) expect(what, cond string) {
	p.t.Helper()
	ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
	if err != nil || !ok {
		p.t.Fatalf("expected %s (%s): %v\n%s", what, cond, err, p.state())
	}
}

func (p *notebookPage) state() string {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`typeof pageState === 'function' ? pageState() : document.body.innerText`))
	if err != nil {
		return "page state unavailable: " + err.Error()
	}
	return s
}

func (p *notebookPage) waitCell(i int, state string) {
	p.t.Helper()
	p.wait(fmt.Sprintf("cell %d %s", i, state), fmt.Sprintf(`cells().length > %d && cell(%d).dataset.state === %q`, i, i, state))
}

func (p *notebookPage) expectOutput(i int, want string) {
	p.t.Helper()
	got, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf(`outputText(%d)`, i)))
	if err != nil || got != want {
		p.t.Fatalf("cell %d output = %q, %v; want %q", i, got, err, want)
	}
}

// setCode puts code in cell i (adding cells as needed) and focuses it.
func (p *notebookPage) setCode(i int, code string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(`(() => {
		while (cells().length <= %d) document.getElementById('add-cell').click();
		const ta = cell(%d).querySelector('textarea');
		ta.value = %q;
		ta.dispatchEvent(new Event('input'));
		ta.focus();
		ta.setSelectionRange(ta.value.length, ta.value.length);
		return true;
	})()`, i, i, code))
}

func (p *notebookPage) setCells(codes []string) {
	p.t.Helper()
	for i, c := range codes {
		p.setCode(i, c)
	}
}

// run runs cell i with Ctrl+Enter, the run-in-place key.
func (p *notebookPage) run(i int, code string) {
	p.t.Helper()
	p.setCode(i, code)
	runs, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](fmt.Sprintf(`Number(cell(%d).dataset.runs || 0)`, i)))
	if err != nil {
		p.t.Fatal(err)
	}
	p.key(kb.Enter, chromedp.ModifierCtrl)
	// A new run, whatever its state now: a quick cell may be done already.
	p.wait(fmt.Sprintf("cell %d to start", i), fmt.Sprintf(`Number(cell(%d).dataset.runs || 0) > %d`, i, runs))
}

// key types keys. A special key is one press whose text comes with its
// keydown, as in a real browser, so that a handler's preventDefault stops
// it (chromedp's KeyEvent sends the text in a separate char event, which
// would type a newline after the page handled Enter).
func (p *notebookPage) key(keys string, mods ...chromedp.Modifier) {
	p.t.Helper()
	k, special := kb.Keys[[]rune(keys)[0]]
	if !special || len([]rune(keys)) != 1 || keys == " " {
		if err := chromedp.Do(p.ctx, chromedp.KeyEvent(keys, chromedp.KeyModifiers(mods...))); err != nil {
			p.t.Fatal(err)
		}
		return
	}
	var m int64
	for _, mod := range mods {
		m |= int64(mod)
	}
	down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: k.Key, Code: k.Code,
		WindowsVirtualKeyCode: k.Windows, NativeVirtualKeyCode: k.Native, Modifiers: m}
	if k.Print && m&^int64(chromedp.ModifierShift) == 0 {
		down.Text, down.UnmodifiedText = k.Text, k.Unmodified
	}
	up := down
	up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
	for _, ev := range []input.DispatchKeyEventParams{down, up} {
		if _, err := chromedp.Call(p.ctx, input.DispatchKeyEvent, ev); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *notebookPage) click(sel string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatal(err)
	}
}

func (p *notebookPage) screenshot() []byte {
	p.t.Helper()
	// Settle the page (fonts, plotly's transitions) before capturing: wait
	// for two animation frames rather than a fixed time.
	if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)); err != nil {
		p.t.Fatal(err)
	}
	b, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits until the kernel has written path.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written in time", path)
		}
		time.Sleep(10 * time.Millisecond) // polling a file: there is no event to wait on
	}
}

// GET / through the whole server: browsers get the page, API clients the
// original backend's JSON, and caches are told the answer depends on Accept.
func TestRootServesPageOrJSON(t *testing.T) {
	base := startServer(t, "")
	for _, tt := range []struct {
		accept, ctype, body string
	}{
		{"", "application/json", `"message":"HRatlas Backend API"`},
		{"*/*", "application/json", `"message":"HRatlas Backend API"`},
		{"application/json", "application/json", `"message":"HRatlas Backend API"`},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html; charset=utf-8", "<title>kernelgate notebook</title>"},
	} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || !strings.Contains(string(body), tt.body) || resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: %d %q Vary %q, body %.80q; want 200 %q containing %q, Vary Accept",
				tt.accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Vary"), body, tt.ctype, tt.body)
		}
	}
}
