package jupyterapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// apiVersion is the Jupyter Server REST API generation kernelgate speaks
// (the kernels, kernelspecs and sessions services of jupyter_server 2).
const apiVersion = "2.0.0"

func (a *API) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": apiVersion, "server": "kernelgate"})
}

// status is Jupyter Server's /api/status, for the caller's kernels.
func (a *API) status(w http.ResponseWriter, r *http.Request) {
	user := a.user(r)
	kernels, conns := 0, 0
	last := a.started
	for _, k := range a.kernels.List() {
		info := k.Info()
		if info.Owner != user {
			continue
		}
		kernels++
		conns += a.connections(info.ID)
		if info.LastActivity.After(last) {
			last = info.LastActivity
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"started": formatTime(a.started), "last_activity": formatTime(last),
		"connections": conns, "kernels": kernels})
}

// specModel is a kernelspec as /api/kernelspecs lists it.
type specModel struct {
	Name      string            `json:"name"`
	Spec      specFields        `json:"spec"`
	Resources map[string]string `json:"resources"`
}

type specFields struct {
	Argv          []string          `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env"`
	Metadata      json.RawMessage   `json:"metadata"`
}

// resourceFiles are the files of a spec dir served as resources (Jupyter
// Server's list: logos, kernel.js, kernel.css).
func resourceFiles(dir string) map[string]string {
	out := map[string]string{}
	if dir == "" {
		return out
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		switch {
		case strings.HasPrefix(name, "logo-") && (strings.HasSuffix(name, ".png") || strings.HasSuffix(name, ".svg")):
			out[strings.TrimSuffix(strings.TrimSuffix(name, ".png"), ".svg")] = name
		case name == "kernel.js" || name == "kernel.css":
			out[name] = name
		}
	}
	return out
}

func (a *API) specModel(spec kernelspec.Spec) specModel {
	res := map[string]string{}
	for key, file := range resourceFiles(spec.Dir) {
		res[key] = "/kernelspecs/" + spec.Name + "/" + file
	}
	env := spec.Env
	if env == nil {
		env = map[string]string{}
	}
	md := spec.Metadata
	if len(md) == 0 {
		md = json.RawMessage("{}")
	}
	mode := spec.InterruptMode
	if mode == "" {
		mode = "signal"
	}
	return specModel{Name: spec.Name, Resources: res, Spec: specFields{Argv: spec.Argv, DisplayName: spec.DisplayName,
		Language: spec.Language, InterruptMode: mode, Env: env, Metadata: md}}
}

func (a *API) listSpecs(w http.ResponseWriter, r *http.Request) {
	specs, def := a.kernels.Specs()
	out := make(map[string]specModel, len(specs))
	for name, s := range specs {
		out[name] = a.specModel(s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"default": def, "kernelspecs": out})
}

func (a *API) getSpec(w http.ResponseWriter, r *http.Request) {
	specs, _ := a.kernels.Specs()
	s, ok := specs[r.PathValue("name")]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Kernel spec %s not found", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, a.specModel(s))
}

// specResource serves a resource file of a kernelspec. Only the files the
// spec lists are served, by their exact names: no path from the request
// reaches the file system.
func (a *API) specResource(w http.ResponseWriter, r *http.Request) {
	specs, _ := a.kernels.Specs()
	s, ok := specs[r.PathValue("name")]
	file := r.PathValue("file")
	if ok {
		files := resourceFiles(s.Dir)
		ok = false
		for _, f := range files {
			ok = ok || f == file
		}
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Kernel spec resource %s/%s not found", r.PathValue("name"), file))
		return
	}
	http.ServeFile(w, r, filepath.Join(s.Dir, file))
}

func (a *API) listKernels(w http.ResponseWriter, r *http.Request) {
	user := a.user(r)
	// Admins see every user's kernels when they ask for them: ?all=1.
	all := a.admin(r) && r.URL.Query().Get("all") != "" && r.URL.Query().Get("all") != "0"
	out := []kernelModel{}
	for _, k := range a.kernels.List() {
		if all || k.Info().Owner == user {
			out = append(out, a.model(k))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// startRequest is the body of POST /api/kernels.
type startRequest struct {
	Name string            `json:"name"`
	Path string            `json:"path"`
	Env  map[string]string `json:"env"`
}

// maxRESTBody bounds REST request bodies (a start request, a session).
const maxRESTBody = 1 << 20

// readBody decodes a JSON body into v; an empty body leaves v as it is.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
	if err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("request body is not valid JSON for this route: %w", err)
	}
	return nil
}

// kernelEnv keeps the variables a client may set: KERNEL_* and the
// allow-listed names.
func (a *API) kernelEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "KERNEL_") || slices.Contains(a.cfg.AllowedEnv, k) {
			out[k] = v
		}
	}
	return out
}

// start starts a kernel for the caller, answering the error itself when
// it fails.
func (a *API) start(w http.ResponseWriter, r *http.Request, spec string, env map[string]string, unknownSpec int) (*kernel.Kernel, bool) {
	user := a.user(r)
	specs, _ := a.kernels.Specs()
	if _, ok := specs[spec]; spec != "" && !ok {
		names := make([]string, 0, len(specs))
		for n := range specs {
			names = append(names, n)
		}
		sort.Strings(names)
		writeError(w, unknownSpec, fmt.Sprintf("The '%s' kernel is not available; available kernels: %s", spec, strings.Join(names, ", ")))
		return nil, false
	}
	if a.limits != nil {
		if err := a.limits.KernelStart(r.Context(), user); err != nil {
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(ra.RetryAfter().Seconds())))))
			}
			writeError(w, http.StatusTooManyRequests, err.Error())
			return nil, false
		}
	}
	k, err := a.kernels.Start(r.Context(), kernel.StartOptions{Spec: spec, Owner: user, Env: a.kernelEnv(env)})
	switch {
	case errors.Is(err, kernel.ErrQuota):
		writeError(w, http.StatusForbidden, err.Error())
		return nil, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, "Exception starting kernel: "+err.Error())
		return nil, false
	}
	a.noteStarted(k.ID())
	return k, true
}

func (a *API) startKernel(w http.ResponseWriter, r *http.Request) {
	var req startRequest
	if err := readBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	k, ok := a.start(w, r, req.Name, req.Env, http.StatusNotFound)
	if !ok {
		return
	}
	w.Header().Set("Location", "/api/kernels/"+k.ID())
	writeJSON(w, http.StatusCreated, a.model(k))
}

func (a *API) getKernel(w http.ResponseWriter, r *http.Request) {
	k, err := a.ownKernel(r, r.PathValue("id"), true)
	if err != nil {
		kernelNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, a.model(k))
}

func kernelNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "Kernel does not exist: "+r.PathValue("id"))
}

func (a *API) deleteKernel(w http.ResponseWriter, r *http.Request) {
	k, err := a.ownKernel(r, r.PathValue("id"), true)
	if err != nil {
		kernelNotFound(w, r)
		return
	}
	if err := a.kernels.Shutdown(r.Context(), k.ID()); err != nil && !errors.Is(err, kernel.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "Exception shutting down kernel: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) interruptKernel(w http.ResponseWriter, r *http.Request) {
	k, err := a.ownKernel(r, r.PathValue("id"), false)
	if err != nil {
		kernelNotFound(w, r)
		return
	}
	if err := k.Interrupt(r.Context()); err != nil {
		writeError(w, http.StatusConflict, "Cannot interrupt kernel: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) restartKernel(w http.ResponseWriter, r *http.Request) {
	k, err := a.ownKernel(r, r.PathValue("id"), false)
	if err != nil {
		kernelNotFound(w, r)
		return
	}
	if err := k.Restart(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, "Exception restarting kernel: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.model(k))
}
