package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/gateway/outbox"
)

// Webhook events POSTed to a tenant's webhook URL. The body is JSON; the
// header X-Optgate-Signature is "sha256=" and the hex HMAC-SHA256 of
// timestamp + "." + body with the tenant's secret, and X-Optgate-Timestamp
// carries that timestamp (unix seconds), so receivers can refuse replays.
// Delivery is at least once: X-Optgate-Event-Id identifies duplicates.
type WebhookEvent struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"` // message.received, message.status, consent.opted_out, ...
	Tenant string          `json:"tenant"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
}

type webhookPayload struct {
	URL   string          `json:"url"`
	Event json.RawMessage `json:"event"`
}

// SignWebhook returns the X-Optgate-Signature value for body sent at ts.
func SignWebhook(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// emit queues an event for the tenant's webhook, durably. It returns the
// store's error; with no webhook configured it does nothing.
func (g *Gateway) emit(t *Tenant, typ string, data any) error {
	it, err := g.eventItem(t, typ, data)
	if it == nil || err != nil {
		return err
	}
	return g.outbox.Put(it)
}

// eventItem builds the outbox item of a webhook event; nil when the
// tenant has no webhook.
func (g *Gateway) eventItem(t *Tenant, typ string, data any) (*outbox.Item, error) {
	if t == nil || t.cfg.Webhook.URL == "" {
		return nil, nil
	}
	d, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	ev := WebhookEvent{ID: g.ids.next(), Type: typ, Tenant: t.ID, Time: time.Now().UTC(), Data: d}
	evb, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	p, _ := json.Marshal(webhookPayload{URL: t.cfg.Webhook.URL, Event: evb})
	return &outbox.Item{ID: ev.ID, Kind: "webhook", Tenant: t.ID, Payload: p}, nil
}

func (g *Gateway) deliverWebhook(ctx context.Context, it *outbox.Item) error {
	var p webhookPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return outbox.Permanent(err)
	}
	t := g.tenants[it.Tenant]
	if t == nil {
		return outbox.Permanent(fmt.Errorf("unknown tenant %q", it.Tenant))
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	ts := time.Now().Unix()
	req.SetRequestURI(p.URL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Optgate-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Optgate-Signature", SignWebhook(t.cfg.Webhook.Secret, ts, p.Event))
	req.Header.Set("X-Optgate-Event-Id", it.ID)
	req.Header.Set("User-Agent", "optgate-webhook/1")
	req.SetBody(p.Event)
	err := g.webhookClient.DoTimeout(req, resp, g.cfg.Webhooks.Timeout)
	g.metrics.webhookAttempts.WithLabelValues(t.ID).Inc()
	if err != nil {
		g.metrics.webhookFailures.WithLabelValues(t.ID, "network").Inc()
		return err
	}
	code := resp.StatusCode()
	if code >= 200 && code < 300 {
		return nil
	}
	g.metrics.webhookFailures.WithLabelValues(t.ID, strconv.Itoa(code/100)+"xx").Inc()
	if code == 410 || code == 413 {
		// The endpoint refuses this event; retrying will not help.
		return outbox.Permanent(fmt.Errorf("webhook answered %d", code))
	}
	return fmt.Errorf("webhook answered %d", code)
}
