// Package console runs code in a kernel and renders what it emits to a
// terminal: stdout and stderr as they arrive, a short note for rich output
// such as "[image/png 640x480]", the traceback on error, and answers to
// input() read from the terminal. It backs `kernelgate run`.
package console

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

// Run executes code in k, renders its outputs to out and errw as they come,
// and answers input prompts with lines from in. It reports whether the
// execution succeeded.
func Run(ctx context.Context, k *kernel.Kernel, code string, in io.Reader, out, errw io.Writer) (bool, error) {
	ex, err := k.Execute(ctx, kernel.ExecuteRequest{Code: code, StoreHistory: true, AllowStdin: true, StopOnError: true})
	if err != nil {
		return false, err
	}
	lines := bufio.NewReader(in)
	err = k.Follow(ctx, ex, func(e kernel.Event) error {
		switch {
		case e.Life != nil:
			fmt.Fprintf(errw, "[kernel %s: %s]\n", e.Life.Kind, e.Life.Reason)
		case e.Msg.Type() == jmsg.InputRequest:
			return answer(ctx, k, e.Msg, in, lines, out)
		default:
			Render(e.Msg, out, errw)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	_, reply, xerr := ex.Result()
	if xerr != nil {
		return false, xerr
	}
	return reply.Status == "ok", nil
}

// answer prompts on out, reads one line and sends it to the kernel. The
// read must not outlive ctx (a SIGTERM while the code waits for input): a
// pollable input (a pipe, a terminal) is unblocked with a read deadline;
// otherwise the reading goroutine is left to end with the process.
func answer(ctx context.Context, k *kernel.Kernel, req *jmsg.Message, in io.Reader, lines *bufio.Reader, out io.Writer) error {
	var c jmsg.InputRequestContent
	_ = req.Decode(&c)
	fmt.Fprint(out, c.Prompt)
	got := make(chan string, 1)
	go func() {
		line, _ := lines.ReadString('\n') // at EOF: answer empty, as a closed terminal would
		got <- strings.TrimRight(line, "\r\n")
	}()
	select {
	case line := <-got:
		return k.Input(line)
	case <-ctx.Done():
		if d, ok := in.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
			<-got
		}
		return ctx.Err()
	}
}

// Render writes one kernel output message in terminal form.
func Render(m *jmsg.Message, out, errw io.Writer) {
	switch m.Type() {
	case jmsg.Stream:
		var c jmsg.StreamContent
		if m.Decode(&c) == nil {
			if c.Name == "stderr" {
				io.WriteString(errw, c.Text)
			} else {
				io.WriteString(out, c.Text)
			}
		}
	case jmsg.ExecuteResult, jmsg.DisplayData, jmsg.UpdateDisplayData:
		var c jmsg.DisplayContent
		if m.Decode(&c) == nil {
			fmt.Fprintln(out, Summary(c.Data))
		}
	case jmsg.Error:
		var c jmsg.ErrorContent
		if m.Decode(&c) == nil {
			if len(c.Traceback) > 0 {
				fmt.Fprintln(errw, strings.Join(c.Traceback, "\n"))
			} else {
				fmt.Fprintf(errw, "%s: %s\n", c.Ename, c.Evalue)
			}
		}
	}
}

// Summary is the terminal form of a MIME bundle: its plain text when the
// bundle is only text, otherwise a note per rich type with what can be told
// cheaply (an image's size, a payload's length), then the text.
func Summary(data map[string]json.RawMessage) string {
	var text string
	if raw, ok := data["text/plain"]; ok {
		_ = json.Unmarshal(raw, &text)
	}
	var notes []string
	for mime, raw := range data {
		if mime == "text/plain" {
			continue
		}
		notes = append(notes, note(mime, raw))
	}
	sort.Strings(notes)
	if len(notes) == 0 {
		return text
	}
	s := strings.Join(notes, " ")
	// Text that only names the object (a Figure's repr) adds nothing.
	if text != "" && !strings.HasPrefix(text, "<") {
		s += "\n" + text
	}
	return s
}

func note(mime string, raw json.RawMessage) string {
	if mime == "image/png" {
		var b64 string
		if json.Unmarshal(raw, &b64) == nil {
			if w, h, ok := pngSize(b64); ok {
				return fmt.Sprintf("[image/png %dx%d]", w, h)
			}
		}
	}
	return fmt.Sprintf("[%s %s]", mime, byteSize(len(raw)))
}

// pngSize reads width and height from a base64 PNG's IHDR chunk.
func pngSize(b64 string) (w, h int, ok bool) {
	if len(b64) < 32 {
		return 0, 0, false
	}
	head, err := base64.StdEncoding.DecodeString(b64[:32])
	if err != nil || len(head) < 24 || string(head[1:4]) != "PNG" || string(head[12:16]) != "IHDR" {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint32(head[16:20])), int(binary.BigEndian.Uint32(head[20:24])), true
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
