package app

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kernelgate/kernelgate/internal/auth"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

// adminKernel is one kernel in GET /api/admin/kernels.
type adminKernel struct {
	ID           string       `json:"id"`
	Owner        string       `json:"owner"`
	Spec         string       `json:"spec"`
	State        kernel.State `json:"state"`
	Started      time.Time    `json:"started"`
	LastActivity time.Time    `json:"last_activity"`
	Restarts     int          `json:"restarts"`
}

// withAdmins registers the administrators' routes on mux and returns mux
// wrapped so that every handler can ask auth.IsAdmin. It goes inside
// auth.Middleware, which names the user.
func withAdmins(c config.Config, mux *http.ServeMux, mgr *kernel.Manager) (http.Handler, error) {
	admins, err := auth.NewAdmins(c.AdminUsers, c.JWT)
	if err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /api/admin/kernels", func(w http.ResponseWriter, r *http.Request) {
		if !auth.IsAdmin(r) {
			// As for any unknown path: the route's existence is not news.
			http.NotFound(w, r)
			return
		}
		out := []adminKernel{}
		for _, k := range mgr.List() {
			in := k.Info()
			out = append(out, adminKernel{ID: in.ID, Owner: in.Owner, Spec: in.SpecName, State: in.State,
				Started: in.Started, LastActivity: in.LastActivity, Restarts: in.Restarts})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(out)
	})
	return admins.Handler(mux), nil
}
