// Command kernelgate runs Python code for notebooks: `kernelgate serve`
// starts the server, `kernelgate run` executes code in a fresh kernel and
// streams its output to the terminal.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kernelgate/kernelgate/internal/app"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

const usage = `kernelgate: a gateway that runs notebook code in real Jupyter kernels.

Usage:
  kernelgate serve [flags]            start the HTTP server (default 127.0.0.1:8000)
  kernelgate run [flags] -c CODE      run CODE in a fresh kernel, stream its output
  kernelgate run [flags] FILE.py      run a file the same way
  kernelgate help                     this text; 'kernelgate serve -h' lists the flags

Every flag can also be set as KERNELGATE_<FLAG> in the environment
(e.g. KERNELGATE_ADDR=0.0.0.0:8000); flags win over the environment.
`

func main() {
	sandbox.MaybeRunHelper() // the re-exec that confines a kernel before it starts
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		c, _, err := config.Load("kernelgate serve", args[1:], os.Getenv, os.Environ(), stderr)
		if err != nil {
			return fail(stderr, err)
		}
		log := app.NewLogger(c, stderr)
		err = app.Serve(ctx, c, log, func(addr string) {
			fmt.Fprintf(stdout, "kernelgate is serving at http://%s\n", addr)
		})
		if err != nil {
			return fail(stderr, err)
		}
		return 0
	case "run":
		return runCode(ctx, args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "kernelgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func runCode(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var code string
	rest := args[:0:0]
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" && i+1 < len(args) {
			code = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	c, files, err := config.Load("kernelgate run", rest, os.Getenv, os.Environ(), stderr)
	if err != nil {
		return fail(stderr, err)
	}
	switch {
	case code == "" && len(files) == 1:
		b, err := os.ReadFile(files[0])
		if err != nil {
			return fail(stderr, err)
		}
		code = string(b)
	case code == "" || len(files) > 0:
		fmt.Fprint(stderr, "kernelgate run: give either -c CODE or one FILE.py\n")
		return 2
	}
	if c.LogLevel == "info" {
		c.LogLevel = "warn" // the terminal is for the code's output
	}
	ok, err := app.RunCode(ctx, c, app.NewLogger(c, stderr), code, stdin, stdout, stderr)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "kernelgate: stopped by a signal; the kernel was shut down")
		return 130
	}
	if err != nil {
		return fail(stderr, err)
	}
	if !ok {
		return 1
	}
	return 0
}

func fail(w io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -h printed the flags
	}
	fmt.Fprintf(w, "kernelgate: %v\n", err)
	return 1
}
