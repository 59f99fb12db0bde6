package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrWindowClosed is returned by Client.Send for a free-form (non-template) message when the
	// 24-hour customer service window for the recipient is closed. Meta is not called.
	ErrWindowClosed = errors.New("whatsapp: customer service window closed; send a template")
	// ErrInvalidMessage wraps every local validation failure of a Message.
	ErrInvalidMessage = errors.New("whatsapp: invalid message")
	// ErrPairRateLimited is returned when the local per-recipient (pair) limiter cannot grant a
	// send before the context deadline.
	ErrPairRateLimited = errors.New("whatsapp: pair rate limit for recipient")
	// ErrServerClosed is returned by Serve/ListenAndServe after Shutdown or Close.
	ErrServerClosed = errors.New("whatsapp: receiver closed")
	// ErrInvalidRecipient is returned by ChooseChannel for a number it cannot parse.
	ErrInvalidRecipient = errors.New("whatsapp: invalid recipient number")
	// ErrUnknownChannel is returned by ChooseChannel for an explicit channel it does not know.
	ErrUnknownChannel = errors.New("whatsapp: unknown channel")
	// ErrWhatsAppUnavailable is returned by ChooseChannel when WhatsApp was requested explicitly
	// for a country where WhatsApp Business is not available.
	ErrWhatsAppUnavailable = errors.New("whatsapp: WhatsApp Business unavailable in recipient country")
)

// ErrorClass groups Graph error codes by what the caller should do. It is also the "class"
// label of the sends metric, so its String values are stable.
type ErrorClass uint8

// Error classes, see whatsapp.md §4.
const (
	ClassNone         ErrorClass = iota // success
	ClassTransient                      // 1, 2, 131000, 131016, 131057, 133004, 5xx, transport errors: retry with back-off
	ClassThrottle                       // 4, 80007, 130429, 131048: global throttle, back off the whole number
	ClassPairThrottle                   // 131056: throttle for this recipient only, back off 4^X seconds
	ClassAuth                           // 0, 190: token problem; permanent and alerting
	ClassTemplate                       // 132xxx: template configuration; permanent
	ClassWindow                         // 131047 or the local window check; send a template instead
	ClassOptOut                         // 131050: user stopped marketing messages; never retry
	ClassPermanent                      // everything else (131026, 131051, 100, ...)
)

var classNames = [...]string{"none", "transient", "throttle", "pair_throttle", "auth", "template", "window", "opt_out", "permanent"}

func (c ErrorClass) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Retryable reports whether an error of this class may succeed when sent again later.
func (c ErrorClass) Retryable() bool {
	return c == ClassTransient || c == ClassThrottle || c == ClassPairThrottle
}

// Classify maps a Graph error code (and the HTTP status, used only when the body carried no
// error code) to its class. Meta documents that HTTP statuses are unreliable, so the code wins.
func Classify(code, httpStatus int) ErrorClass {
	switch {
	case code == 0 && httpStatus >= 500:
		return ClassTransient
	case code == 0 && httpStatus == 429:
		return ClassThrottle
	case code == 0 && httpStatus == 401:
		return ClassAuth
	case code == 0 && httpStatus == 0:
		return ClassTransient // transport failure, no response
	}
	switch code {
	case 0, 190:
		return ClassAuth
	case 1, 2, 131000, 131016, 131057, 133004:
		return ClassTransient
	case 4, 80007, 130429, 131048:
		return ClassThrottle
	case 131056:
		return ClassPairThrottle
	case 131047:
		return ClassWindow
	case 131050:
		return ClassOptOut
	}
	if code >= 132000 && code <= 132999 {
		return ClassTemplate
	}
	return ClassPermanent
}

// APIError is a failed Graph API call: either Meta's error envelope or, when the body had none,
// the HTTP status alone (Code 0). Transport failures and timeouts are reported with HTTPStatus 0.
type APIError struct {
	HTTPStatus int    // HTTP status of the response; 0 for a transport error or timeout
	Code       int    // error.code
	Subcode    int    // error.error_subcode (deprecated by Meta, optional)
	Type       string // error.type, e.g. "OAuthException"
	Message    string // error.message, "(#<code>) <title>"
	Details    string // error.error_data.details
	FBTraceID  string // error.fbtrace_id
	Retryable  bool   // whether sending again later may succeed (see ErrorClass.Retryable)
	Class      ErrorClass
	Err        error // underlying transport error, if any
}

func (e *APIError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("whatsapp: graph request failed (http %d): %v", e.HTTPStatus, e.Err)
	}
	return fmt.Sprintf("whatsapp: graph error %d (http %d, %s): %s", e.Code, e.HTTPStatus, e.Class, e.Message)
}

// Unwrap returns the transport error, and ErrWindowClosed for code 131047 so that
// errors.Is(err, ErrWindowClosed) holds for both the local refusal and Meta's.
func (e *APIError) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	if e.Code == 131047 {
		return ErrWindowClosed
	}
	return nil
}

// wireErrorEnvelope is Meta's error body, whatsapp.md §3.
type wireErrorEnvelope struct {
	Error *struct {
		Message      string          `json:"message"`
		Type         string          `json:"type"`
		Code         int             `json:"code"`
		ErrorSubcode int             `json:"error_subcode"`
		FBTraceID    string          `json:"fbtrace_id"`
		ErrorData    json.RawMessage `json:"error_data"`
	} `json:"error"`
}

// parseAPIError builds an APIError from a non-success response. It never fails: a body that is
// not an envelope yields Code 0 and is classified by HTTP status.
func parseAPIError(status int, body []byte) *APIError {
	e := &APIError{HTTPStatus: status}
	var env wireErrorEnvelope
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = env.Error.Code
		e.Subcode = env.Error.ErrorSubcode
		e.Type = env.Error.Type
		e.Message = env.Error.Message
		e.FBTraceID = env.Error.FBTraceID
		e.Details = errorDetails(env.Error.ErrorData)
	} else {
		e.Message = fmt.Sprintf("unexpected response body (%d bytes)", len(body))
		if status == 401 {
			// 401 without an envelope is still an auth failure.
			e.Code = 0
		}
	}
	if e.Code == 0 && e.Type == "" && status < 500 && status != 429 && status != 401 && status != 0 {
		// Not an envelope and not a status with a meaning of its own.
		e.Class = ClassPermanent
	} else {
		e.Class = Classify(e.Code, status)
	}
	e.Retryable = e.Class.Retryable()
	return e
}

// errorDetails extracts error_data.details; error_data may be an object or, on some endpoints,
// a plain string (whatsapp.md §3).
func errorDetails(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var obj struct {
		Details string `json:"details"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Details
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}
