package flowapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// Msg is one server→client message; the session adds "seq" when it journals
// it. Messages from one Cell may share nested values: treat them as
// read-only.
type Msg map[string]any

// DefaultMaxTableRows caps result and table_result records unless
// CellOptions says otherwise. Note that pandas itself only puts
// display.max_rows rows (60 with the bootstrap) in a table bundle.
const DefaultMaxTableRows = 100

// DefaultMaxStreamBytes caps the text a cell streams unless CellOptions
// says otherwise.
const DefaultMaxStreamBytes = 10 << 20

// DefaultMaxFinalOutputBytes caps the stdout and the stderr kept for a
// cell's final messages unless CellOptions says otherwise.
const DefaultMaxFinalOutputBytes = 1 << 20

// CellOptions tunes how a Cell renders outputs.
type CellOptions struct {
	RawBase64Plots  bool   // plots as raw base64 PNG instead of "data:image/png;base64,…" URIs
	PlotlyScriptURL string // src of plotly.js used by the self-contained figure HTML (default "/static/plotly.js")
	MaxTableRows    int    // cap for result/table_result records (default 100)
	// MaxFinalOutputBytes caps the stdout and, separately, the stderr that
	// the final messages repeat (default 1 MiB): they keep the end of each
	// stream. The streamed stream_output chunks are never cut.
	MaxFinalOutputBytes int
	// MaxStreamBytes caps the text one cell streams to clients (default
	// 10 MiB): past it the gateway sends one notice and drops the rest, so
	// a runaway print loop cannot flood clients or the session journal.
	MaxStreamBytes int
}

func (o CellOptions) withDefaults() CellOptions {
	if o.PlotlyScriptURL == "" {
		o.PlotlyScriptURL = DefaultPlotlyScriptURL
	}
	if o.MaxTableRows <= 0 {
		o.MaxTableRows = DefaultMaxTableRows
	}
	if o.MaxFinalOutputBytes <= 0 {
		o.MaxFinalOutputBytes = DefaultMaxFinalOutputBytes
	}
	if o.MaxStreamBytes <= 0 {
		o.MaxStreamBytes = DefaultMaxStreamBytes
	}
	return o
}

// FlowState is the value of bootstrap.FlowStateExpr: the user's variables
// and DataFrames, already bounded by the kernel.
type FlowState struct {
	Variables          json.RawMessage `json:"variables"`
	DataFrameVariables json.RawMessage `json:"dataframe_variables"`
}

// CellEnd is how an execution ended.
type CellEnd struct {
	Reply jmsg.ExecuteReplyContent // from the kernel's execute_reply (Status ok|error|aborted, ExecutionCount, Ename/Evalue/Traceback)
	Lost  string                   // non-empty: the cell ended without a reply (kernel died or restarted, kernelgate lost track); a plain sentence
	State *FlowState               // nil when unavailable
}

// Error names a Cell gives executions that ended without an error of the
// kernel's own. (A running cell that is interrupted ends with the kernel's
// own KeyboardInterrupt.)
const (
	EnameKernelDied = "KernelDied"       // CellEnd.Lost
	EnameAborted    = "ExecutionAborted" // execute_reply status "aborted"
)

// MIME types a Cell looks at.
const (
	mimePlotly       = "application/vnd.plotly.v1+json"
	mimeDataResource = "application/vnd.dataresource+json"
	mimeJSON         = "application/json"
	mimePNG          = "image/png"
	mimeJPEG         = "image/jpeg"
	mimeSVG          = "image/svg+xml"
	mimeHTML         = "text/html"
	mimeText         = "text/plain"
)

type cellPlotKind int

const (
	plotImage cellPlotKind = iota + 1
	plotPlotly
	plotHTML
)

type cellPlot struct {
	s    string
	kind cellPlotKind
}

// Cell folds the kernel messages of one execution into AdeloopFlow
// messages. Feed it every message of the execution, in order, with Observe;
// end it with Finish. A Cell is not safe for concurrent use.
type Cell struct {
	id        string
	streaming bool
	opts      CellOptions

	stdout, stderr tailBuffer // what the final messages repeat: the end of each stream
	streamed       int        // bytes of stream text sent to clients
	capped         bool       // the stream cap was reached (or output was lost) and announced
	lost           uint64     // kernel messages of the cell dropped before they were read (Gap)
	plots          []cellPlot
	displays       map[string]int // display_id → index in plots
	result         *jmsg.DisplayContent
	err            *jmsg.ErrorContent
	count          int // execution_count seen on execute_input / execute_result
}

// NewCell starts folding the execution of the cell cellID. streaming is the
// execute message's "streaming" flag: it makes a failure end with
// execution_error rather than execution_result.
func NewCell(cellID string, streaming bool, opts CellOptions) *Cell {
	opts = opts.withDefaults()
	return &Cell{
		id: cellID, streaming: streaming, opts: opts, displays: map[string]int{},
		stdout: tailBuffer{max: opts.MaxFinalOutputBytes},
		stderr: tailBuffer{max: opts.MaxFinalOutputBytes},
	}
}

// Observe takes the next kernel message of the execution and returns the
// messages to send now:
//
//   - stream: stream_output {content, stream, is_last: false}
//   - display_data, update_display_data: display_output {plot?, data,
//     metadata, transient?}; "plot" is a PNG (data URI or raw base64), JPEG
//     or SVG data URI, plotly figure HTML, or the bundle's HTML when there is
//     nothing better
//   - input_request: input_request {prompt, password}
//
// execute_result and error are remembered for Finish; clear_output drops the
// plots collected so far (a live-updating figure ends as its last frame);
// everything else is ignored. All text is stripped of ANSI escapes.
func (c *Cell) Observe(m *jmsg.Message) []Msg {
	if m == nil {
		return nil
	}
	switch m.Type() {
	case jmsg.Stream:
		var sc jmsg.StreamContent
		if m.Decode(&sc) != nil {
			return nil
		}
		return c.ObserveStream(sc.Name, sc.Text)

	case jmsg.DisplayData, jmsg.UpdateDisplayData:
		var dc jmsg.DisplayContent
		if m.Decode(&dc) != nil {
			return nil
		}
		out := Msg{"type": "display_output", "cell_id": c.id, "data": bundleOrEmpty(dc.Data), "metadata": bundleOrEmpty(dc.Metadata)}
		if len(dc.Transient) > 0 {
			out["transient"] = dc.Transient
		}
		p, ok := c.plotFor(dc.Data)
		if !ok {
			return []Msg{out}
		}
		out["plot"] = p.s
		c.collect(p, displayID(dc.Transient), m.Type() == jmsg.UpdateDisplayData)
		return []Msg{out}

	case jmsg.ExecuteResult:
		var dc jmsg.DisplayContent
		if m.Decode(&dc) != nil {
			return nil
		}
		c.result = &dc
		if dc.ExecutionCount > 0 {
			c.count = dc.ExecutionCount
		}
		// A figure as the last expression is a plot; a table's HTML is not
		// (it becomes table_result).
		if p, ok := c.plotFor(dc.Data); ok && (p.kind != plotHTML || dc.Data[mimeDataResource] == nil) {
			c.plots = append(c.plots, p)
		}
		return nil

	case jmsg.Error:
		var ec jmsg.ErrorContent
		if m.Decode(&ec) != nil {
			return nil
		}
		c.err = &ec
		return nil

	case jmsg.InputRequest:
		var ic jmsg.InputRequestContent
		if m.Decode(&ic) != nil {
			return nil
		}
		return []Msg{{"type": "input_request", "cell_id": c.id, "prompt": StripANSI(ic.Prompt), "password": ic.Password}}

	case jmsg.ExecuteInput:
		var ei struct {
			ExecutionCount int `json:"execution_count"`
		}
		if m.Decode(&ei) == nil && ei.ExecutionCount > 0 {
			c.count = ei.ExecutionCount
		}
		return nil

	case jmsg.ClearOutput:
		c.plots = nil
		clear(c.displays)
		return nil
	}
	return nil
}

// ObserveStream takes a run of consecutive stream messages of one stream
// (name "stdout" or "stderr"), already decoded, and returns at most one
// stream_output chunk for all of them (plus the cap notice when the run
// crosses the cap). Each text is stripped of ANSI escapes on its own, so a
// run gives exactly the bytes the same messages fed one by one to Observe
// would, in fewer wire messages.
func (c *Cell) ObserveStream(name string, texts ...string) []Msg {
	if name != "stderr" {
		name = "stdout"
	}
	tail := &c.stdout
	if name == "stderr" {
		tail = &c.stderr
	}
	var b strings.Builder
	for _, t := range texts {
		t = StripANSI(t)
		tail.WriteString(t)
		if !c.capped { // past the cap only the tail for the final messages is kept
			b.WriteString(t)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return c.streamChunk(name, b.String())
}

// Gap records that n kernel messages of the cell were lost before they
// were read: under a flood the kernel's journal dropped them. The stream is
// then cut as at the stream cap (one notice, nothing more streamed), and
// the final result says so, so no client mistakes the output for complete.
func (c *Cell) Gap(n uint64) []Msg {
	c.lost += n
	if c.capped {
		return nil
	}
	c.capped = true
	return []Msg{{"type": "stream_output", "cell_id": c.id, "stream": "stderr", "is_last": false, "truncated": true,
		"content": fmt.Sprintf("\n[kernelgate: this cell printed faster than kernelgate could forward it; %d of its messages were dropped, and the rest of its output is not sent]\n", n)}}
}

// collect adds a plot to the cell's result. A display that names a
// display_id is replaced in place by its updates; an update of a display
// this cell did not show is not collected.
func (c *Cell) collect(p cellPlot, id string, update bool) {
	if id != "" {
		if i, ok := c.displays[id]; ok {
			c.plots[i] = p
			return
		}
		if update {
			return
		}
		c.displays[id] = len(c.plots)
	} else if update {
		return
	}
	c.plots = append(c.plots, p)
}

func displayID(transient map[string]json.RawMessage) string {
	var id string
	if json.Unmarshal(transient["display_id"], &id) != nil {
		return ""
	}
	return id
}

// plotFor picks the richest plot in a MIME bundle: a plotly figure, a PNG,
// JPEG or SVG image, else HTML.
func (c *Cell) plotFor(data map[string]json.RawMessage) (cellPlot, bool) {
	if raw, ok := data[mimePlotly]; ok {
		if s, ok := PlotlyHTML(NewPlotlyID(), raw, c.opts.PlotlyScriptURL); ok {
			return cellPlot{s, plotPlotly}, true
		}
	}
	if s, ok := mimeString(data[mimePNG]); ok {
		if b64 := stripSpace(s); b64 != "" {
			if c.opts.RawBase64Plots {
				return cellPlot{b64, plotImage}, true
			}
			return cellPlot{"data:image/png;base64," + b64, plotImage}, true
		}
	}
	if s, ok := mimeString(data[mimeJPEG]); ok {
		if b64 := stripSpace(s); b64 != "" {
			return cellPlot{"data:image/jpeg;base64," + b64, plotImage}, true
		}
	}
	if s, ok := mimeString(data[mimeSVG]); ok && strings.TrimSpace(s) != "" {
		return cellPlot{"data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(s)), plotImage}, true
	}
	if s, ok := mimeString(data[mimeHTML]); ok && strings.TrimSpace(s) != "" {
		return cellPlot{s, plotHTML}, true
	}
	return cellPlot{}, false
}

// ending is how the execution ended, in AdeloopFlow terms.
type ending struct {
	ok        bool
	ename     string
	evalue    string
	traceback []string // lines, ANSI stripped
	count     int
}

func (c *Cell) conclude(end CellEnd) ending {
	o := ending{ok: true, count: end.Reply.ExecutionCount}
	if o.count == 0 {
		o.count = c.count
	}
	switch {
	case end.Lost != "":
		o.ok = false
		o.ename, o.evalue = EnameKernelDied, end.Lost
	case end.Reply.Status == "error" || (end.Reply.Status == "" && c.err != nil):
		o.ok = false
		if c.err != nil {
			o.ename, o.evalue, o.traceback = c.err.Ename, c.err.Evalue, c.err.Traceback
		} else {
			o.ename, o.evalue, o.traceback = end.Reply.Ename, end.Reply.Evalue, end.Reply.Traceback
		}
		if o.ename == "" {
			o.ename = "Error"
		}
	case end.Reply.Status == "aborted":
		o.ok = false
		o.ename = EnameAborted
		o.evalue = "The cell was not run because an earlier execution failed."
	}
	o.evalue = StripANSI(o.evalue)
	o.traceback = tracebackLines(o.traceback)
	return o
}

// tracebackLines strips ANSI escapes and splits ipykernel's multi-line
// traceback entries into lines, as the AdeloopFlow backend sent them.
func tracebackLines(tb []string) []string {
	lines := []string{}
	for _, e := range tb {
		lines = append(lines, strings.Split(StripANSI(e), "\n")...)
	}
	return lines
}

// text is what a failure's "content" shows: the traceback, or "ename:
// evalue" when there is none (as for AdeloopFlow's syntax errors).
func (o ending) text() string {
	if len(o.traceback) > 0 {
		return strings.Join(o.traceback, "\n")
	}
	if o.evalue == "" {
		return o.ename
	}
	return o.ename + ": " + o.evalue
}

func (o ending) errorObject() Msg {
	return Msg{"ename": o.ename, "evalue": o.evalue, "traceback": o.traceback}
}

func (o ending) errorDetails() Msg {
	return Msg{"message": o.evalue, "ename": o.ename, "evalue": o.evalue, "traceback": o.traceback}
}

// Finish returns the messages that end the cell, in this order:
//
//  1. the final stream_output {content: "", is_last: true, result: {…}} on
//     success, or {content: <traceback>, stream: "stderr", is_last: true,
//     error: {ename, evalue, traceback}} on failure (the latest AdeloopFlow
//     backend's default reply);
//  2. execution_result with the result fields flattened ({status, output,
//     error, plots, result, variables, …}, the W1/W2 and provide_input
//     shape), except that a failed streaming cell ends with execution_error
//     {content, is_last: true, error} (the latest backend's realtime mode).
//
// A cell that ended without a reply (CellEnd.Lost) is a failure with ename
// KernelDied and the Lost sentence as evalue.
//
// The result's stdout, stderr and output hold at most
// CellOptions.MaxFinalOutputBytes of each stream, its end. When some was
// left out, the result also has "output_truncated": true, "output_bytes"
// and "stderr_bytes" (the length of all the stdout and stderr, ANSI
// escapes stripped, that the streamed chunks carried).
func (c *Cell) Finish(end CellEnd) []Msg {
	o := c.conclude(end)
	fields := c.resultFields(o, end.State)
	var first, second Msg
	if o.ok {
		first = Msg{"type": "stream_output", "cell_id": c.id, "content": "", "is_last": true, "result": fields}
	} else {
		first = Msg{"type": "stream_output", "cell_id": c.id, "content": o.text(), "stream": "stderr", "is_last": true, "error": o.errorObject()}
	}
	if !o.ok && c.streaming {
		second = Msg{"type": "execution_error", "cell_id": c.id, "content": o.text(), "is_last": true, "error": o.errorObject()}
	} else {
		second = maps.Clone(fields)
		second["type"] = "execution_result"
		second["cell_id"] = c.id
	}
	return []Msg{first, second}
}

// resultFields are the fields of the final result, nested in the final
// stream_output and flat in execution_result.
func (c *Cell) resultFields(o ending, st *FlowState) Msg {
	res, table := c.resultValue()
	plots, images, plotly := c.plotList()
	stdout, stderr := c.stdout.String(), c.stderr.String()
	f := Msg{
		"status":                "ok",
		"execution_count":       o.count,
		"stdout":                stdout,
		"stderr":                stderr,
		"output":                stdout,
		"error":                 "",
		"plots":                 plots,
		"result":                res,
		"table_result":          nil,
		"variables":             nil,
		"dataframe_variables":   []any{},
		"overwritten_variables": []any{},
		"error_details":         nil,
		"data":                  nil,
		"plot_count":            images,
		"plotly_count":          plotly,
		"total_plots":           len(plots),
	}
	if table != nil {
		f["table_result"] = table
	}
	if c.capped {
		f["stream_truncated"] = true
	}
	if c.stdout.total > int64(len(stdout)) || c.stderr.total > int64(len(stderr)) || c.lost > 0 {
		f["output_truncated"] = true
		f["output_bytes"] = c.stdout.total // with messages lost: what was read, a lower bound
		f["stderr_bytes"] = c.stderr.total
	}
	if c.lost > 0 {
		f["messages_lost"] = c.lost
	}
	if st != nil {
		if v, ok := validJSON(st.Variables); ok {
			f["variables"] = v
		}
		if v, ok := validJSON(st.DataFrameVariables); ok {
			f["dataframe_variables"] = v
		}
	}
	if !o.ok {
		f["status"] = "error"
		f["error"] = o.evalue
		f["error_details"] = o.errorDetails()
	}
	return f
}

// plotList returns the collected plots and the number of images and plotly
// figures among them.
func (c *Cell) plotList() (plots []string, images, plotly int) {
	plots = make([]string, 0, len(c.plots))
	for _, p := range c.plots {
		plots = append(plots, p.s)
		switch p.kind {
		case plotImage:
			images++
		case plotPlotly:
			plotly++
		}
	}
	return plots, images, plotly
}

// resultValue is the last expression's value for "result": a table's
// records, application/json as is, else the text/plain repr; nil without an
// execute_result. table is the table_result object for a table, else nil.
func (c *Cell) resultValue() (result any, table Msg) {
	if c.result == nil {
		return nil, nil
	}
	data := c.result.Data
	if raw, ok := data[mimeDataResource]; ok {
		text, _ := mimeString(data[mimeText])
		if t, ok := parseTable(raw, text, c.opts.MaxTableRows); ok {
			return t.records, Msg{
				"type":      "table",
				"data":      t.records,
				"columns":   t.columns,
				"title":     "DataFrame Result",
				"shape":     t.shape,
				"truncated": t.truncated,
			}
		}
	}
	if raw, ok := data[mimeJSON]; ok {
		if v, ok := validJSON(raw); ok {
			return v, nil
		}
	}
	if s, ok := mimeString(data[mimeText]); ok {
		return StripANSI(s), nil
	}
	return nil, nil
}

// tailBuffer keeps the last max bytes written to it (for max > 0) and
// counts all of them, so that a cell printing without end holds a bounded
// amount of text: at most 2*max bytes, moved to the front of the buffer
// when it is full, so that writes cost amortized O(len(s)).
type tailBuffer struct {
	max   int
	buf   []byte
	total int64 // bytes written
}

func (t *tailBuffer) WriteString(s string) {
	t.total += int64(len(s))
	if len(s) >= t.max {
		t.buf = append(t.buf[:0], s[len(s)-t.max:]...)
		return
	}
	if len(t.buf)+len(s) > 2*t.max {
		// Move the tail to the front: with s, max bytes.
		keep := t.max - len(s)
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-keep:])]
	}
	t.buf = append(t.buf, s...)
}

// String returns the last max bytes written, less the leading bytes of a
// UTF-8 sequence that the cut split. It returns everything written when
// that fits.
func (t *tailBuffer) String() string {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	if int64(len(b)) < t.total {
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return string(b)
}

// flowTable is a pandas table-schema bundle (application/vnd.dataresource+json)
// made into AdeloopFlow's table: records, columns, shape.
type flowTable struct {
	records   []tableRecord
	columns   []Msg
	shape     []int
	truncated bool
}

type tableBundle struct {
	Schema struct {
		Fields []struct {
			Name json.RawMessage `json:"name"`
		} `json:"fields"`
		PrimaryKey json.RawMessage `json:"primaryKey"`
	} `json:"schema"`
	Data []json.RawMessage `json:"data"`
}

var (
	// pandas ends a truncated DataFrame repr with its dimensions, and a
	// truncated Series repr with its length.
	frameDimsRE    = regexp.MustCompile(`\[(\d+) rows x (\d+) columns\]\s*$`)
	seriesLengthRE = regexp.MustCompile(`Length: (\d+), dtype: \S+\s*$`)
)

// parseTable reads a table bundle. pandas puts the index in the table as
// the primary key; an unnamed default index ("index" = 0, 1, 2, …) is
// dropped, as the AdeloopFlow backend (which sent df.to_dict("records"))
// never showed it, but an index that carries labels (describe(), groupby)
// is kept as a column. The bundle itself holds only the first
// display.max_rows rows; the full shape comes from the text/plain repr when
// pandas truncated it.
func parseTable(raw json.RawMessage, text string, maxRows int) (flowTable, bool) {
	var tb tableBundle
	if err := json.Unmarshal(raw, &tb); err != nil || len(tb.Schema.Fields) == 0 {
		return flowTable{}, false
	}
	var names []string
	for _, f := range tb.Schema.Fields {
		var s string
		if json.Unmarshal(f.Name, &s) != nil {
			s = string(bytes.TrimSpace(f.Name)) // a number: pandas writes the tableRecord key as its text
		}
		names = append(names, s)
	}
	keys := primaryKey(tb.Schema.PrimaryKey)
	nIndex := 0
	for _, k := range keys {
		for _, n := range names {
			if n == k {
				nIndex++
				break
			}
		}
	}
	n := min(len(tb.Data), maxRows)
	rows := make([]map[string]json.RawMessage, 0, n)
	for _, r := range tb.Data[:n] {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(r, &m); err != nil || m == nil {
			return flowTable{}, false
		}
		rows = append(rows, m)
	}
	drop := len(keys) == 1 && keys[0] == "index" && isDefaultIndex(rows)
	var cols []string
	for _, name := range names {
		if drop && name == "index" {
			continue
		}
		cols = append(cols, name)
	}
	t := flowTable{records: make([]tableRecord, 0, n), columns: make([]Msg, 0, len(cols))}
	for _, name := range cols {
		t.columns = append(t.columns, Msg{"key": name, "label": name})
	}
	for _, m := range rows {
		if drop {
			delete(m, "index")
		}
		t.records = append(t.records, newRecord(cols, m))
	}
	t.shape = []int{len(tb.Data), len(names) - nIndex}
	if s := frameDimsRE.FindStringSubmatch(text); s != nil {
		r, _ := strconv.Atoi(s[1])
		c, _ := strconv.Atoi(s[2])
		t.shape = []int{r, c}
	} else if s := seriesLengthRE.FindStringSubmatch(text); s != nil {
		r, _ := strconv.Atoi(s[1])
		t.shape = []int{r, 1}
	}
	t.truncated = t.shape[0] > len(t.records)
	return t, true
}

// primaryKey reads a table schema primaryKey: a field name or a list.
func primaryKey(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// isDefaultIndex reports whether every row's "index" is its position, as
// for a DataFrame's default RangeIndex.
func isDefaultIndex(rows []map[string]json.RawMessage) bool {
	for i, m := range rows {
		if string(bytes.TrimSpace(m["index"])) != strconv.Itoa(i) {
			return false
		}
	}
	return true
}

// tableRecord is one table row as a JSON object whose keys keep the column
// order (a Go map would sort them).
type tableRecord struct {
	keys []string
	vals []json.RawMessage
}

// newRecord orders m's values by cols; keys not among cols follow, sorted.
func newRecord(cols []string, m map[string]json.RawMessage) tableRecord {
	r := tableRecord{keys: make([]string, 0, len(m)), vals: make([]json.RawMessage, 0, len(m))}
	seen := make(map[string]bool, len(cols))
	for _, k := range cols {
		seen[k] = true
		v, ok := m[k]
		if !ok {
			v = json.RawMessage("null")
		}
		r.keys = append(r.keys, k)
		r.vals = append(r.vals, v)
	}
	var extra []string
	for k := range m {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		r.keys = append(r.keys, k)
		r.vals = append(r.vals, m[k])
	}
	return r
}

// MarshalJSON writes the tableRecord as an object in column order.
func (r tableRecord) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(r.vals[i])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// mimeString decodes a text MIME value: a JSON string, or a list of lines
// as nbformat stores multi-line text.
func mimeString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var lines []string
	if json.Unmarshal(raw, &lines) == nil {
		return strings.Join(lines, ""), true
	}
	return "", false
}

// stripSpace removes the line breaks some kernels put in base64.
func stripSpace(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// validJSON returns raw for embedding, or false when it is empty, null or
// not JSON.
func validJSON(raw json.RawMessage) (json.RawMessage, bool) {
	if len(bytes.TrimSpace(raw)) == 0 || isJSONNull(raw) || !json.Valid(raw) {
		return nil, false
	}
	return raw, true
}

func bundleOrEmpty(m map[string]json.RawMessage) map[string]json.RawMessage {
	if m == nil {
		return map[string]json.RawMessage{}
	}
	return m
}

// StripANSI removes terminal escape sequences (colors, cursor movement,
// titles and hyperlinks) from s, as ipykernel puts them in tracebacks.
// Unterminated string sequences lose only their introducer, so no text is
// swallowed.
func StripANSI(s string) string {
	i := strings.IndexByte(s, 0x1b)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		ch := s[i]
		if ch != 0x1b {
			j := strings.IndexByte(s[i:], 0x1b)
			if j < 0 {
				b.WriteString(s[i:])
				break
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		if i+1 >= len(s) {
			break // a lone ESC at the end
		}
		switch s[i+1] {
		case '[': // CSI: parameters, intermediates, one final byte
			j := i + 2
			for j < len(s) && s[j] >= 0x30 && s[j] <= 0x3f {
				j++
			}
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
				j++
			}
			i = j
		case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
			j, end := i+2, -1
			for ; j < len(s); j++ {
				if s[j] == 0x07 {
					end = j + 1
					break
				}
				if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
					end = j + 2
					break
				}
			}
			if end < 0 {
				end = i + 2
			}
			i = end
		default: // ESC, intermediates (e.g. "(" for charsets), one final byte
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
				j++
			}
			i = j
		}
	}
	return b.String()
}

// streamChunk sends text unless the cell's stream cap is reached; the
// chunk that crosses it is cut (at a rune boundary) and followed by one
// notice. The final messages still report the stream's total size.
func (c *Cell) streamChunk(name, text string) []Msg {
	if c.capped {
		return nil
	}
	room := c.opts.MaxStreamBytes - c.streamed
	if len(text) <= room {
		c.streamed += len(text)
		return []Msg{{"type": "stream_output", "cell_id": c.id, "content": text, "stream": name, "is_last": false}}
	}
	cut := room
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	c.capped = true
	c.streamed += cut
	var out []Msg
	if cut > 0 {
		out = append(out, Msg{"type": "stream_output", "cell_id": c.id, "content": text[:cut], "stream": name, "is_last": false})
	}
	return append(out, Msg{"type": "stream_output", "cell_id": c.id, "stream": "stderr", "is_last": false, "truncated": true,
		"content": fmt.Sprintf("\n[kernelgate: this cell printed more than %d bytes; the rest of its output is not sent]\n", c.opts.MaxStreamBytes)})
}
