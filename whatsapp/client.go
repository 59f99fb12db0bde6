package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ClientConfig configures a Client. Zero fields take the documented defaults.
type ClientConfig struct {
	// BaseURL is the Graph API root. Default "https://graph.facebook.com".
	BaseURL string
	// Version is the Graph API version path element. Default "v25.0".
	Version string
	// PhoneNumberID is the default sending number (Message.PhoneNumberID overrides it).
	PhoneNumberID string
	// Token is the system-user access token sent as "Authorization: Bearer".
	Token string

	// Timeout bounds one HTTP attempt. Default 10 s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one Send, retries included. Default 4.
	MaxAttempts int
	// RetryBase and RetryMax shape the exponential back-off (with jitter) for transient and
	// throttle errors. Defaults 250 ms and 8 s.
	RetryBase, RetryMax time.Duration
	// PairRetryUnit is the unit of the 4^X back-off after 131056 (whatsapp.md §12). Default 1 s.
	PairRetryUnit time.Duration

	// Rate is the per-number throughput in messages a second. Default 80 (Meta's default;
	// 20 for coexistence numbers, up to 1000 after an upgrade).
	Rate float64
	// PairInterval is the sustained per-recipient spacing. Default 6 s; negative disables.
	PairInterval time.Duration
	// PairBurst is how many messages a recipient may get at once before PairInterval applies.
	// Default 10 (Meta tolerates bursts up to 45 but charges them against future quota).
	PairBurst int

	// Window, if set, is consulted before every free-form send and updated on 131047.
	Window *Window
	// MaxConns is the connection pool size. Default 256.
	MaxConns int

	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Client sends messages through the WhatsApp Cloud API. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	hc      *fasthttp.Client
	lim     *limiter
	log     *slog.Logger
	metrics *Metrics
	auth    string // "Bearer <token>"
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	var problems []string
	if cfg.Token == "" {
		problems = append(problems, "Token is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://graph.facebook.com"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		problems = append(problems, fmt.Sprintf("BaseURL %q: want http:// or https://", cfg.BaseURL))
	}
	if cfg.Version == "" {
		cfg.Version = "v25.0"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 8 * time.Second
	}
	if cfg.PairRetryUnit <= 0 {
		cfg.PairRetryUnit = time.Second
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 80
	}
	if cfg.PairInterval == 0 {
		cfg.PairInterval = 6 * time.Second
	}
	if cfg.PairBurst <= 0 {
		cfg.PairBurst = 10
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("whatsapp: client config: %s", strings.Join(problems, "; "))
	}
	burst := int(cfg.Rate) // one second of traffic
	c := &Client{
		cfg: cfg,
		hc: &fasthttp.Client{
			Name:                          "optgate",
			MaxConnsPerHost:               cfg.MaxConns,
			MaxIdleConnDuration:           90 * time.Second,
			ReadTimeout:                   cfg.Timeout,
			WriteTimeout:                  cfg.Timeout,
			MaxConnWaitTimeout:            cfg.Timeout,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: false,
			RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false }, // we retry ourselves, by error code
		},
		lim:     newLimiter(cfg.Rate, burst, cfg.PairInterval, cfg.PairBurst),
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		auth:    "Bearer " + cfg.Token,
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// wireSendResponse is the success body, whatsapp.md §3.
type wireSendResponse struct {
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

// Send validates m, enforces the 24-hour window for free-form messages (ErrWindowClosed
// without calling Meta), waits for the number's and the recipient's rate limits, and posts it.
// Retryable failures (ClassTransient, ClassThrottle, ClassPairThrottle, timeouts) are retried
// with back-off up to MaxAttempts while ctx allows; the last failure is returned as *APIError.
// It returns the wamid of the accepted message. Acceptance is not delivery: a later failure
// arrives as a status webhook. A timed-out attempt may have been accepted by Meta, so a retry
// after a timeout can deliver twice.
func (c *Client) Send(ctx context.Context, m Message) (string, error) {
	start := c.cfg.Now()
	if m.PhoneNumberID == "" {
		m.PhoneNumberID = c.cfg.PhoneNumberID
	}
	if m.PhoneNumberID == "" {
		return "", fmt.Errorf("%w: no PhoneNumberID", ErrInvalidMessage)
	}
	if err := m.Validate(); err != nil {
		c.metrics.sends.WithLabelValues("invalid", ClassPermanent.String()).Inc()
		return "", err
	}
	rcpt := recipientKey(m.To)
	if !m.IsTemplate() && c.cfg.Window != nil && !c.cfg.Window.Open(m.PhoneNumberID, rcpt, start) {
		c.metrics.sends.WithLabelValues("refused", ClassWindow.String()).Inc()
		return "", ErrWindowClosed
	}
	body, err := m.MarshalJSON()
	if err != nil {
		return "", err
	}
	url := c.cfg.BaseURL + "/" + c.cfg.Version + "/" + m.PhoneNumberID + "/messages"

	var last error
	for attempt := 0; attempt < c.cfg.MaxAttempts; attempt++ {
		if err := c.lim.wait(ctx, m.PhoneNumberID, rcpt, c.cfg.Now()); err != nil {
			c.metrics.sends.WithLabelValues("failed", ClassThrottle.String()).Inc()
			if last != nil {
				return "", fmt.Errorf("whatsapp: send: %w (after %v)", err, last)
			}
			return "", err
		}
		id, apiErr := c.do(ctx, url, body)
		if apiErr == nil {
			outcome := "sent"
			if attempt > 0 {
				outcome = "sent_after_retry"
			}
			c.metrics.sends.WithLabelValues(outcome, ClassNone.String()).Inc()
			c.metrics.sendSeconds.Observe(c.cfg.Now().Sub(start).Seconds())
			return id, nil
		}
		last = apiErr
		switch apiErr.Class {
		case ClassAuth:
			c.metrics.tokenErrors.Inc()
			c.log.Error("whatsapp: access token rejected; rotate the token", "code", apiErr.Code, "fbtrace_id", apiErr.FBTraceID)
		case ClassWindow:
			if c.cfg.Window != nil {
				if err := c.cfg.Window.Close(m.PhoneNumberID, rcpt, c.cfg.Now()); err != nil {
					c.log.Warn("whatsapp: recording closed window failed", "err", err)
				}
			}
		}
		if !apiErr.Retryable || attempt == c.cfg.MaxAttempts-1 {
			break
		}
		wait := c.backoff(attempt, apiErr)
		now := c.cfg.Now()
		switch apiErr.Class {
		case ClassThrottle:
			c.lim.pauseNumber(m.PhoneNumberID, now.Add(wait))
		case ClassPairThrottle:
			c.lim.pausePair(m.PhoneNumberID, rcpt, now.Add(wait))
		}
		if dl, ok := ctx.Deadline(); ok && now.Add(wait).After(dl) {
			break // no time left for another attempt
		}
		c.metrics.retries.WithLabelValues(apiErr.Class.String()).Inc()
		c.log.Debug("whatsapp: retrying send", "attempt", attempt+1, "code", apiErr.Code, "http", apiErr.HTTPStatus, "wait", wait)
		if err := sleepCtx(ctx, wait); err != nil {
			break
		}
	}
	var ae *APIError
	class := ClassPermanent
	if errors.As(last, &ae) {
		class = ae.Class
	}
	c.metrics.sends.WithLabelValues("failed", class.String()).Inc()
	return "", last
}

// backoff returns the wait before the next attempt: 4^X × PairRetryUnit for the pair limit
// (whatsapp.md §12), exponential with full jitter between half and all of the step otherwise.
func (c *Client) backoff(attempt int, e *APIError) time.Duration {
	if e.Class == ClassPairThrottle {
		d := c.cfg.PairRetryUnit
		for i := 0; i < attempt && d < time.Hour; i++ {
			d *= 4
		}
		return d
	}
	d := c.cfg.RetryBase << attempt
	if d > c.cfg.RetryMax || d <= 0 {
		d = c.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// do performs one attempt. The deadline is the earlier of ctx's and now+Timeout (fasthttp has
// no context support, so a cancelled ctx ends the attempt at that deadline at the latest).
func (c *Client) do(ctx context.Context, url string, body []byte) (string, *APIError) {
	if err := ctx.Err(); err != nil {
		return "", &APIError{Err: err, Class: ClassTransient, Message: err.Error()}
	}
	deadline := time.Now().Add(c.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", c.auth)
	req.SetBodyRaw(body)
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return "", &APIError{Err: err, Class: ClassTransient, Retryable: true, Message: err.Error()}
	}
	status := resp.StatusCode()
	rb := resp.Body()
	if status == fasthttp.StatusOK {
		var ok wireSendResponse
		if err := json.Unmarshal(rb, &ok); err != nil || len(ok.Messages) == 0 || ok.Messages[0].ID == "" {
			// Meta answered 200, so the message may have been accepted: do not retry.
			return "", &APIError{HTTPStatus: status, Class: ClassPermanent, Message: "200 without a message id"}
		}
		return ok.Messages[0].ID, nil
	}
	return "", parseAPIError(status, rb)
}
