package flowapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// DefaultPlotlyScriptURL is where figure HTML loads plotly.js from unless
// CellOptions says otherwise.
const DefaultPlotlyScriptURL = "/static/plotly.js"

// plotlyNonce and plotlySeq make div ids unique across cells and across
// gateway restarts (a client may keep old outputs in the same page): the
// AdeloopFlow backend restarted its numbering in every cell, so two cells
// could draw into one div.
var (
	plotlyNonce = rand.Uint32()
	plotlySeq   atomic.Uint64
)

// NewPlotlyID returns a div id no other figure of this process uses.
func NewPlotlyID() string {
	return fmt.Sprintf("kg-plotly-%08x-%d", plotlyNonce, plotlySeq.Add(1))
}

// defaultPlotlyConfig is merged under a figure's own config; it is what the
// AdeloopFlow backend passed to fig.to_html, minus its mode-bar choices.
var defaultPlotlyConfig = map[string]json.RawMessage{
	"responsive":  json.RawMessage("true"),
	"displaylogo": json.RawMessage("false"),
}

// PlotlyHTML renders a plotly figure, the value of an
// application/vnd.plotly.v1+json bundle entry ({"data", "layout", "config"?,
// "frames"?}), as a self-contained HTML document: a div with id divID, a
// <script src=scriptURL> that loads plotly.js, and a script that calls
// Plotly.newPlot(divID, data, layout, config). This is the shape of the
// AdeloopFlow backend's fig.to_html output. The figure JSON is embedded with
// "</" written as "<\/" and "<!--" as "\u003c!--", so no string in the
// figure can end the script element. ok is false when figure is not a JSON
// object.
func PlotlyHTML(divID string, figure json.RawMessage, scriptURL string) (s string, ok bool) {
	var fig map[string]json.RawMessage
	if err := json.Unmarshal(figure, &fig); err != nil || fig == nil {
		return "", false
	}
	data, ok1 := scriptJSON(fig["data"], "[]")
	layout, ok2 := scriptJSON(fig["layout"], "{}")
	config, ok3 := scriptJSON(mergedConfig(fig["config"]), "{}")
	if !ok1 || !ok2 || !ok3 {
		return "", false
	}
	frames := ""
	if raw, ok := fig["frames"]; ok && !isJSONNull(raw) {
		f, ok := scriptJSON(raw, "[]")
		if !ok {
			return "", false
		}
		frames = f
	}
	if scriptURL == "" {
		scriptURL = DefaultPlotlyScriptURL
	}
	idJS, _ := json.Marshal(divID) // a JSON string is a JS string literal
	idAttr := html.EscapeString(divID)
	idScript := escapeScript(string(idJS))

	var b strings.Builder
	b.Grow(len(data) + len(layout) + len(config) + len(frames) + 1024)
	b.WriteString("<html>\n<head><meta charset=\"utf-8\" />\n")
	b.WriteString("<style>.plotly-graph-div, .js-plotly-plot, .plot-container { width: 100%; }</style>\n")
	b.WriteString("</head>\n<body>\n<div>\n")
	fmt.Fprintf(&b, "<script type=\"text/javascript\" src=\"%s\"></script>\n", html.EscapeString(scriptURL))
	fmt.Fprintf(&b, "<div id=\"%s\" class=\"plotly-graph-div\" style=\"height:100%%; width:100%%;\"></div>\n", idAttr)
	b.WriteString("<script type=\"text/javascript\">\n")
	b.WriteString("window.PLOTLYENV = window.PLOTLYENV || {};\n")
	fmt.Fprintf(&b, "if (document.getElementById(%s)) {\n", idScript)
	fmt.Fprintf(&b, "  Plotly.newPlot(%s, %s, %s, %s)", idScript, data, layout, config)
	if frames != "" {
		fmt.Fprintf(&b, ".then(function () { return Plotly.addFrames(%s, %s); })", idScript, frames)
	}
	b.WriteString(";\n}\n</script>\n</div>\n</body>\n</html>")
	return b.String(), true
}

// mergedConfig is the figure's config object laid over the defaults.
func mergedConfig(raw json.RawMessage) json.RawMessage {
	m := make(map[string]json.RawMessage, len(defaultPlotlyConfig))
	for k, v := range defaultPlotlyConfig {
		m[k] = v
	}
	var own map[string]json.RawMessage
	if json.Unmarshal(raw, &own) == nil {
		for k, v := range own {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage("{}")
	}
	return out
}

// scriptJSON is raw compacted and made safe to embed in a <script> element;
// def when raw is absent or null; ok false when raw is not JSON.
func scriptJSON(raw json.RawMessage, def string) (string, bool) {
	if len(raw) == 0 || isJSONNull(raw) {
		return def, true
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", false
	}
	return escapeScript(buf.String()), true
}

// scriptEscaper rewrites what could end or confuse an HTML script element.
// In JSON these sequences only occur inside strings, where the replacements
// are valid escapes that decode to the same text. U+2028 and U+2029 end
// lines in older JavaScript engines.
var scriptEscaper = strings.NewReplacer(
	"<!--", `\u003c!--`,
	"</", `<\/`,
	"\u2028", `\u2028`,
	"\u2029", `\u2029`,
)

func escapeScript(s string) string { return scriptEscaper.Replace(s) }

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
