// A control for bench/create.py: the smallest possible mutating webhook, in Go (as Kyverno and
// Gatekeeper are), answering every review with the same JSON patch our webhook returns for the
// bench's pods. What it adds to a CREATE is what any webhook hop costs on this machine; what
// ours adds beyond it is what our Python server costs. Standard library only.
//
// Usage: controlwebhook -listen 127.0.0.1:PORT -cert tls.crt -key tls.key -patch patch.json
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID string `json:"uid"`
	} `json:"request,omitempty"`
	Response *response `json:"response,omitempty"`
}

type response struct {
	UID       string `json:"uid"`
	Allowed   bool   `json:"allowed"`
	PatchType string `json:"patchType,omitempty"`
	Patch     string `json:"patch,omitempty"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address")
	cert := flag.String("cert", "tls.crt", "serving certificate")
	key := flag.String("key", "tls.key", "serving key")
	patchFile := flag.String("patch", "", "JSON patch to return (none: allow unchanged)")
	flag.Parse()
	patch := ""
	if *patchFile != "" {
		raw, err := os.ReadFile(*patchFile)
		if err != nil {
			log.Fatal(err)
		}
		patch = base64.StdEncoding.EncodeToString(raw)
	}
	http.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		var in review
		if err != nil || json.Unmarshal(body, &in) != nil || in.Request == nil {
			http.Error(w, "malformed AdmissionReview", http.StatusBadRequest)
			return
		}
		out := review{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview",
			Response: &response{UID: in.Request.UID, Allowed: true}}
		if patch != "" {
			out.Response.PatchType, out.Response.Patch = "JSONPatch", patch
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	server := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(server.ListenAndServeTLS(*cert, *key))
}
