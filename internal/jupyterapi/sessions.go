package jupyterapi

import (
	"context"
	"net/http"
	"sync"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

// session is a Jupyter session: a document (path) bound to a kernel.
// Sessions are bookkeeping for clients (JupyterLab reopens a notebook's
// kernel through them); they live as long as their kernel does.
type session struct {
	ID, Owner, Path, Name, Type, KernelID string
}

// sessions is the session table, per user.
type sessions struct {
	mu   sync.Mutex
	byID map[string]session
}

func newSessions() *sessions { return &sessions{byID: make(map[string]session)} }

func (s *sessions) get(owner, id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	return v, ok && v.Owner == owner
}

func (s *sessions) byPath(owner, path string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.byID {
		if v.Owner == owner && v.Path == path {
			return v, true
		}
	}
	return session{}, false
}

func (s *sessions) list(owner string) []session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []session
	for _, v := range s.byID {
		if v.Owner == owner {
			out = append(out, v)
		}
	}
	return out
}

func (s *sessions) put(v session) {
	s.mu.Lock()
	s.byID[v.ID] = v
	s.mu.Unlock()
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// sessionModel is Jupyter Server's session model (with the "notebook"
// field older clients read).
type sessionModel struct {
	ID       string            `json:"id"`
	Path     string            `json:"path"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Kernel   kernelModel       `json:"kernel"`
	Notebook map[string]string `json:"notebook"`
}

// live returns the session's model, or false (and forgets the session)
// when its kernel is gone, as Jupyter Server does.
func (a *API) live(s session) (sessionModel, bool) {
	k, err := a.kernels.Get(s.KernelID)
	if err != nil || isDone(k) {
		a.sessions.remove(s.ID)
		return sessionModel{}, false
	}
	return sessionModel{ID: s.ID, Path: s.Path, Name: s.Name, Type: s.Type, Kernel: a.model(k),
		Notebook: map[string]string{"path": s.Path, "name": s.Name}}, true
}

func isDone(k *kernel.Kernel) bool {
	select {
	case <-k.Done():
		return true
	default:
		return false
	}
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	out := []sessionModel{}
	for _, s := range a.sessions.list(a.user(r)) {
		if m, ok := a.live(s); ok {
			out = append(out, m)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// sessionRequest is the body of POST and PATCH /api/sessions.
type sessionRequest struct {
	Path     *string `json:"path"`
	Name     *string `json:"name"`
	Type     *string `json:"type"`
	Notebook *struct {
		Path *string `json:"path"`
	} `json:"notebook"` // older clients
	Kernel *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"kernel"`
}

func (q *sessionRequest) path() *string {
	if q.Path == nil && q.Notebook != nil {
		return q.Notebook.Path
	}
	return q.Path
}

func (a *API) createSession(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	if err := readBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	path := req.path()
	if path == nil {
		writeError(w, http.StatusBadRequest, "Missing field in JSON data: path")
		return
	}
	typ := "notebook"
	if req.Type != nil {
		typ = *req.Type
	} else if req.Notebook == nil {
		writeError(w, http.StatusBadRequest, "Missing field in JSON data: type")
		return
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
	}
	user := a.user(r)
	if s, ok := a.sessions.byPath(user, *path); ok {
		if m, ok := a.live(s); ok {
			writeJSON(w, http.StatusCreated, m)
			return
		}
	}
	kernelID, ok := a.sessionKernel(w, r, req)
	if !ok {
		return
	}
	s := session{ID: uuid.NewString(), Owner: user, Path: *path, Name: name, Type: typ, KernelID: kernelID}
	a.sessions.put(s)
	m, ok := a.live(s)
	if !ok {
		writeError(w, http.StatusInternalServerError, "the session's kernel stopped as it was created")
		return
	}
	w.Header().Set("Location", "/api/sessions/"+s.ID)
	writeJSON(w, http.StatusCreated, m)
}

// sessionKernel returns the kernel a session request names: an existing
// kernel of the caller's by id, or a new one of the named spec.
func (a *API) sessionKernel(w http.ResponseWriter, r *http.Request, req sessionRequest) (string, bool) {
	if req.Kernel != nil && req.Kernel.ID != "" {
		k, err := a.ownKernel(r, req.Kernel.ID, false)
		if err != nil {
			writeError(w, http.StatusNotFound, "Kernel does not exist: "+req.Kernel.ID)
			return "", false
		}
		return k.ID(), true
	}
	spec := ""
	if req.Kernel != nil {
		spec = req.Kernel.Name
	}
	k, ok := a.start(w, r, spec, nil, http.StatusNotImplemented)
	if !ok {
		return "", false
	}
	return k.ID(), true
}

func sessionNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "Session not found: "+r.PathValue("id"))
}

// sessionOf returns the caller's session named in the path, or answers 404
// (for another user's session too).
func (a *API) sessionOf(w http.ResponseWriter, r *http.Request) (session, bool) {
	s, ok := a.sessions.get(a.user(r), r.PathValue("id"))
	if !ok {
		sessionNotFound(w, r)
	}
	return s, ok
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	s, ok := a.sessionOf(w, r)
	if !ok {
		return
	}
	m, ok := a.live(s)
	if !ok {
		sessionNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) patchSession(w http.ResponseWriter, r *http.Request) {
	s, ok := a.sessionOf(w, r)
	if !ok {
		return
	}
	var req sessionRequest
	if err := readBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p := req.path(); p != nil {
		s.Path = *p
	}
	if req.Name != nil {
		s.Name = *req.Name
	}
	if req.Type != nil {
		s.Type = *req.Type
	}
	if req.Kernel != nil && (req.Kernel.ID != "" || req.Kernel.Name != "") && req.Kernel.ID != s.KernelID {
		old := s.KernelID
		id, ok := a.sessionKernel(w, r, req)
		if !ok {
			return
		}
		s.KernelID = id
		if req.Kernel.ID == "" {
			// A new kernel by name replaces the old one, which Jupyter
			// Server then shuts down.
			a.shutdownQuietly(r.Context(), old)
		}
	}
	a.sessions.put(s)
	m, ok := a.live(s)
	if !ok {
		sessionNotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	s, ok := a.sessionOf(w, r)
	if !ok {
		return
	}
	a.sessions.remove(s.ID)
	a.shutdownQuietly(r.Context(), s.KernelID)
	w.WriteHeader(http.StatusNoContent)
}

// shutdownQuietly shuts a session's kernel down; a kernel already gone is
// what was wanted.
func (a *API) shutdownQuietly(ctx context.Context, id string) {
	if err := a.kernels.Shutdown(ctx, id); err != nil {
		a.log.Debug("session kernel shutdown", "kernel_id", id, "err", err)
	}
}
