package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// consentCmd runs the admin commands against a running gateway's HTTP API.
func consentCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("consent "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "gateway HTTP API")
	token := fs.String("token", os.Getenv("OPTGATE_ADMIN_TOKEN"), "bearer token (admin or tenant); default $OPTGATE_ADMIN_TOKEN")
	tenant := fs.String("tenant", "", "tenant (admin token)")
	channel := fs.String("channel", "sms", "sms or whatsapp")
	source := fs.String("source", "", "consent source (opt-in: how consent was given; import: where the list comes from)")
	proof := fs.String("proof", "", "proof reference of express consent (opt-in) or of the list (import)")
	operator := fs.String("operator", os.Getenv("USER"), "who makes the change")
	sender := fs.String("sender", "", "our number the change is about (sender scope)")
	note := fs.String("note", "", "free note recorded with the evidence")
	marketing := fs.Bool("marketing", false, "opt-out: marketing messages only")
	evidence := fs.Bool("evidence", false, "export: the evidence log instead of the suppression list")
	strict := fs.Bool("strict", false, "import: apply nothing if any row is malformed")
	limit := fs.Int("limit", 100, "history: entries")
	var positional []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
	}
	if *token == "" {
		fmt.Fprintln(stderr, "optgate consent: no token: pass -token or set OPTGATE_ADMIN_TOKEN")
		return 2
	}
	q := url.Values{}
	if *tenant != "" {
		q.Set("tenant", *tenant)
	}
	q.Set("channel", *channel)
	need := func(n int, what string) bool {
		if len(positional) != n {
			fmt.Fprintf(stderr, "optgate consent %s: expected %s\n", sub, what)
			return false
		}
		return true
	}
	var method, path string
	var body io.Reader
	ctype := "application/json"
	switch sub {
	case "get", "history":
		if !need(1, "RECIPIENT") {
			return 2
		}
		method, path = "GET", "/v1/consent/"+url.PathEscape(positional[0])
		if sub == "history" {
			path += "/history"
			q.Set("limit", fmt.Sprint(*limit))
		}
	case "opt-out", "opt-in":
		if !need(1, "RECIPIENT") {
			return 2
		}
		if sub == "opt-in" && (*source == "" || *proof == "") {
			fmt.Fprintln(stderr, "optgate consent opt-in: -source and -proof (evidence of express consent) are required")
			return 2
		}
		b, _ := json.Marshal(map[string]any{"sender": *sender, "operator": *operator, "source": *source, "proof_ref": *proof,
			"note": *note, "marketing": *marketing})
		method, path, body = "POST", "/v1/consent/"+url.PathEscape(positional[0])+"/"+sub, bytes.NewReader(b)
	case "import":
		if !need(1, "FILE.csv") {
			return 2
		}
		if *source == "" {
			fmt.Fprintln(stderr, "optgate consent import: -source (where the list comes from) is required")
			return 2
		}
		f, err := os.Open(positional[0])
		if err != nil {
			fmt.Fprintln(stderr, "optgate consent import:", err)
			return 1
		}
		defer f.Close()
		q.Set("source", *source)
		q.Set("proof_ref", *proof)
		q.Set("operator", *operator)
		if *strict {
			q.Set("strict", "true")
		}
		method, path, body, ctype = "POST", "/v1/consent/import", f, "text/csv"
	case "export":
		method, path = "GET", "/v1/consent/export"
		if *evidence {
			q.Set("what", "evidence")
		}
	default:
		fmt.Fprintf(stderr, "optgate consent: unknown command %q\n", sub)
		usage(stderr)
		return 2
	}
	req, err := http.NewRequest(method, strings.TrimRight(*base, "/")+path+"?"+q.Encode(), body)
	if err != nil {
		fmt.Fprintln(stderr, "optgate consent:", err)
		return 2
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "optgate consent:", err)
		return 1
	}
	defer resp.Body.Close()
	out := stdout
	if resp.StatusCode >= 300 {
		out = stderr
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		fmt.Fprintln(stderr, "optgate consent:", err)
		return 1
	}
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "\noptgate consent: %s\n", resp.Status)
		return 1
	}
	return 0
}
