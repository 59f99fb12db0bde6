package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metricSet is one scrape of a node's /metrics: the unlabelled samples by
// name, and the replication lag histogram's cumulative buckets.
type metricSet struct {
	values map[string]float64
	lag    lagHist
}

func (m metricSet) gauge(name string) float64 { return m.values[name] }

// lagName is the replication lag histogram optgate exports in a cluster.
const lagName = "optgate_cluster_replication_lag_seconds"

// scrapeMetrics reads g's /metrics on its HTTP API (bounded: 5 s).
func scrapeMetrics(ctx context.Context, g *Gateway) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.HTTPAddr+"/metrics", nil)
	if err != nil {
		return metricSet{}, err
	}
	req.Header.Set("Authorization", "Bearer "+g.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return metricSet{}, fmt.Errorf("bench: scrape %s/metrics: %w", g.HTTPAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricSet{}, fmt.Errorf("bench: scrape %s/metrics: %s", g.HTTPAddr, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 64<<20))
}

// parseMetrics reads the Prometheus text format: it keeps samples without
// labels, and the lag histogram's buckets.
func parseMetrics(rd io.Reader) (metricSet, error) {
	m := metricSet{values: map[string]float64{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, val := line[:sp], line[sp+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		if rest, ok := strings.CutPrefix(name, lagName+`_bucket{le="`); ok {
			le, _, _ := strings.Cut(rest, `"`)
			b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			if err != nil {
				continue
			}
			m.lag = append(m.lag, lagBucket{le: b, n: v})
			continue
		}
		if !strings.ContainsRune(name, '{') {
			m.values[name] = v
		}
	}
	sort.Slice(m.lag, func(i, j int) bool { return m.lag[i].le < m.lag[j].le })
	return m, sc.Err()
}

// lagBucket is one cumulative histogram bucket: n observations ≤ le
// seconds.
type lagBucket struct{ le, n float64 }

// lagHist is a histogram's cumulative buckets, ascending, +Inf last.
type lagHist []lagBucket

// add returns h + o bucket by bucket (the same bounds: the nodes run the
// same binary); an empty side takes the other's.
func (h lagHist) add(o lagHist) lagHist {
	if len(h) == 0 {
		return append(lagHist(nil), o...)
	}
	out := append(lagHist(nil), h...)
	for i := range out {
		if i < len(o) && o[i].le == out[i].le {
			out[i].n += o[i].n
		}
	}
	return out
}

// sub returns h − o (the observations between two scrapes).
func (h lagHist) sub(o lagHist) lagHist {
	out := append(lagHist(nil), h...)
	for i := range out {
		if i < len(o) && o[i].le == out[i].le {
			out[i].n -= o[i].n
		}
	}
	return out
}

// count is the number of observations.
func (h lagHist) count() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].n
}

// quantile estimates the q-quantile (0..1) in seconds as Prometheus's
// histogram_quantile does: linear within the bucket that holds it, the
// first bucket starting at 0, and the highest finite bound when it falls
// in +Inf. NaN without observations.
func (h lagHist) quantile(q float64) float64 {
	total := h.count()
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lo, prev := 0.0, 0.0
	for _, b := range h {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lo
			}
			if b.n == prev {
				return b.le
			}
			return lo + (b.le-lo)*(rank-prev)/(b.n-prev)
		}
		lo, prev = b.le, b.n
	}
	return lo
}

// scrapeLag sums the lag histograms of every node.
func scrapeLag(ctx context.Context, nodes []*Gateway) (lagHist, error) {
	var sum lagHist
	for _, n := range nodes {
		m, err := scrapeMetrics(ctx, n)
		if err != nil {
			return nil, err
		}
		if len(m.lag) == 0 {
			return nil, fmt.Errorf("bench: %s/metrics has no %s: is the node clustered?", n.HTTPAddr, lagName)
		}
		sum = sum.add(m.lag)
	}
	return sum, nil
}
