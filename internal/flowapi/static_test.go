package flowapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/flowapi"
)

func TestStatic_PlotlyJS(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		file string
		code int
		body string
	}{
		{"debian's plotly.js", "", 200, "plotly.js v"},
		{"missing", "/nonexistent/plotly.js", 404, "install the Debian package python3-plotly"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, func(c *flowapi.Config) {
				if tt.file != "" {
					c.PlotlyJSFile = tt.file
				}
			})
			resp, err := http.Get(s.url + "/static/plotly.js")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			head := make([]byte, 200)
			n, _ := io.ReadFull(resp.Body, head)
			if resp.StatusCode != tt.code || !strings.Contains(string(head[:n]), tt.body) {
				t.Fatalf("GET /static/plotly.js = %d %.100q, want %d containing %q", resp.StatusCode, head[:n], tt.code, tt.body)
			}
		})
	}
}
