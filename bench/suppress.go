package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Ways to opt the suppressed pool out before a run.
const (
	SuppressImport = "import" // POST /v1/consent/import, one CSV (fastest)
	SuppressAPI    = "api"    // POST /v1/consent/{recipient}/opt-out, one call a number
	SuppressMO     = "mo"     // STOP MOs from the simulator, one per number
)

// WriteSuppressionCSV writes the first n numbers of the suppressed pool as
// an optgate consent import (consent/csv.go: columns matched by header
// name; tenant,channel,recipient,scope,class,state,since). Adapt here if
// the import format changes.
func WriteSuppressionCSV(w io.Writer, tenant string, n int) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write([]string{"tenant", "channel", "recipient", "scope", "class", "state", "since"}); err != nil {
		return err
	}
	row := []string{tenant, "sms", "", "tenant", "all", "opted_out", ""}
	for i := 0; i < n; i++ {
		row[2] = SuppressedNumber(i)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// PreloadSuppressed opts out the first n numbers of the suppressed pool
// for g's tenant, by via (SuppressImport, SuppressAPI or SuppressMO, the
// last through sim), and returns how long it took.
func PreloadSuppressed(ctx context.Context, g *Gateway, sim *Sim, n int, via string) (time.Duration, error) {
	start := time.Now()
	if n <= 0 {
		return 0, nil
	}
	if n > MaxSuppressed {
		return 0, fmt.Errorf("bench: %d suppressed entries is more than the pool's %d", n, MaxSuppressed)
	}
	var err error
	switch via {
	case SuppressImport, "":
		err = preloadImport(ctx, g, n)
	case SuppressAPI:
		err = preloadAPI(ctx, g, n)
	case SuppressMO:
		err = preloadMO(ctx, sim, n)
	default:
		err = fmt.Errorf("bench: unknown suppression method %q (import, api, mo)", via)
	}
	return time.Since(start), err
}

func preloadImport(ctx context.Context, g *Gateway, n int) error {
	if g.HTTPAddr == "" {
		return fmt.Errorf("bench: the %s gateway has no HTTP API to import suppressions into", g.Kind)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteSuppressionCSV(pw, g.Tenant, n)) }()
	q := url.Values{"tenant": {g.Tenant}, "source": {"optgate-bench"}, "operator": {"optgate-bench"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+g.HTTPAddr+"/v1/consent/import?"+q.Encode(), pr)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.AdminToken)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("bench: consent import: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		hint := ""
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			hint = " (no import endpoint: try -suppress-via api or mo)"
		}
		return fmt.Errorf("bench: consent import: %s%s: %s", resp.Status, hint, strings.TrimSpace(string(body)))
	}
	return nil
}

func preloadAPI(ctx context.Context, g *Gateway, n int) error {
	if g.HTTPAddr == "" {
		return fmt.Errorf("bench: the %s gateway has no HTTP API for opt-outs", g.Kind)
	}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				body := `{"channel":"sms","operator":"optgate-bench","source":"optgate-bench","note":"benchmark preload"}`
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
					"http://"+g.HTTPAddr+"/v1/consent/"+url.PathEscape(SuppressedNumber(i))+"/opt-out?tenant="+url.QueryEscape(g.Tenant),
					strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+g.AdminToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := cl.Do(req)
				if err == nil {
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("opt-out %s: %s: %s", SuppressedNumber(i), resp.Status, strings.TrimSpace(string(b)))
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop everyone
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("bench: opt-out preload: %w", firstErr)
	}
	return ctx.Err()
}

func preloadMO(ctx context.Context, sim *Sim, n int) error {
	if sim == nil {
		return fmt.Errorf("bench: MO preload needs the simulator")
	}
	g, err := sim.StartMO(ctx, MOConfig{Mix: []MOText{{"STOP", 1}}, Distinct: true, FromSuppressed: true,
		Count: int64(n), Duration: 10 * time.Minute})
	if err != nil {
		return err
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		g.Stop()
		<-g.Done()
		return ctx.Err()
	}
	if a := g.Acked.Load(); a < int64(n) {
		return fmt.Errorf("bench: MO STOP preload: %d of %d acknowledged (refused %d, errors %d)", a, n, g.Refused.Load(), g.Errors.Load())
	}
	return nil
}
