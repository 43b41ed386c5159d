// Package client is how the bank's legacy side talks to the decision service
// (ML Service): one application to POST /v1/predict, many to
// POST /v1/predict/batch. It turns every failure into either a refusal the
// officer or the export must fix (*APIError with a 4xx status) or an outage
// worth retrying (retry.Retryable; Outage tells a whole-service outage
// from a failure of one application), because the web form and the batch job
// both keep applications until they are decided, and need to know which is
// which.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"mlservice/internal/retry"
)

// Application is one loan application in the API's words. The numbers are
// pointers because an empty field on the legacy side is left out of the
// request, so that the service itself says "is required" and the legacy
// side never re-implements its rules.
type Application struct {
	ApplicationID string   `json:"application_id,omitempty"`
	Income        *float64 `json:"income,omitempty"`
	CreditScore   *float64 `json:"credit_score,omitempty"`
	LoanAmount    *float64 `json:"loan_amount,omitempty"`
	YearsEmployed *float64 `json:"years_employed,omitempty"`
	Points        *float64 `json:"points,omitempty"`
}

// Model names the model version that decided.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Variant string `json:"variant"`
	// SHA256 identifies the model's files exactly (empty from an older
	// service).
	SHA256 string `json:"sha256,omitempty"`
}

// Reason is one principal reason for a decline, in the bank's words: Code
// is the reason code, Feature the input field it is about, Text the
// sentence for the applicant (with their value in it).
type Reason struct {
	Code    string `json:"code"`
	Feature string `json:"feature"`
	Text    string `json:"text"`
}

// Decision is the service's answer to one application.
type Decision struct {
	ApplicationID string `json:"application_id,omitempty"`
	// DecisionID is the service's id of this decision in its decision
	// record (empty from a service that keeps none).
	DecisionID  string  `json:"decision_id,omitempty"`
	Approve     bool    `json:"approve"`
	Probability float64 `json:"probability"`
	Model       Model   `json:"model"`
	// Reasons are a decline's principal reasons, most important first
	// (1 to 4); none for an approval.
	Reasons   []Reason `json:"reasons,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
}

// Result is one item of a batch answer: a Decision or the item's own
// refusal (Refusal.Fields names the bad fields).
type Result struct {
	Index    int
	Decision *Decision
	Refusal  *APIError
}

// maxResponse bounds what the client reads from the service: a full batch
// of 10,000 decisions is about 2 MB.
const maxResponse = 32 << 20

// Client calls the decision service. It is safe for concurrent use.
type Client struct {
	// BaseURL is the service's root, e.g. http://127.0.0.1:8000.
	BaseURL string
	// HTTP does the calls; its Timeout bounds each call. nil means
	// http.DefaultClient, which has no timeout: set one.
	HTTP *http.Client
	// Token, when set, is sent as a bearer token (POST /v1/outcomes needs
	// one with the role admin or audit). It is never logged.
	Token string
}

// Decide asks for the decision on one application.
func (c *Client) Decide(ctx context.Context, app Application) (Decision, error) {
	var d Decision
	err := c.post(ctx, "/v1/predict", app, &d)
	return d, err
}

// DecideBatch asks for decisions on many applications in one call (the
// service takes at most 10,000). The results come back in input order, one
// per application; a refused item does not fail the others.
func (c *Client) DecideBatch(ctx context.Context, apps []Application) ([]Result, error) {
	var body struct {
		Results []struct {
			Index int `json:"index"`
			Decision
			Error *APIError `json:"error"`
		} `json:"results"`
		RequestID string `json:"request_id"`
	}
	req := struct {
		Applications []Application `json:"applications"`
	}{apps}
	if err := c.post(ctx, "/v1/predict/batch", req, &body); err != nil {
		return nil, err
	}
	if err := inOrder("applications", len(apps), len(body.Results), func(i int) int { return body.Results[i].Index }); err != nil {
		return nil, err
	}
	out := make([]Result, len(apps))
	for i, r := range body.Results {
		out[i].Index = i
		if r.Error != nil {
			r.Error.Status = http.StatusUnprocessableEntity
			r.Error.RequestID = body.RequestID
			out[i].Refusal = r.Error
			continue
		}
		d := r.Decision
		d.RequestID = body.RequestID
		out[i].Decision = &d
	}
	return out, nil
}

// Outcome is the bank's final verdict on an application the service
// decided: approved or not, whatever the model said.
type Outcome struct {
	ApplicationID string `json:"application_id"`
	Approved      bool   `json:"approved"`
}

// OutcomeResult is what the service did with one posted outcome: recorded
// (Refusal nil; Decisions is how many of its decisions it joined) or
// refused (Refusal: 404 not_found for an application it never decided, 422
// for a malformed one, 503 record_unavailable when its record is down).
type OutcomeResult struct {
	Index     int
	Decisions int
	Refusal   *APIError
}

// PostOutcomes posts many outcomes in one call (POST /v1/outcomes, batch
// form {"outcomes": [...]}); the results come back in input order.
func (c *Client) PostOutcomes(ctx context.Context, outs []Outcome) ([]OutcomeResult, error) {
	var body struct {
		Results []struct {
			Index     int       `json:"index"`
			Status    string    `json:"status"`
			Decisions int       `json:"decisions"`
			Error     *APIError `json:"error"`
		} `json:"results"`
	}
	req := struct {
		Outcomes []Outcome `json:"outcomes"`
	}{outs}
	if err := c.post(ctx, "/v1/outcomes", req, &body); err != nil {
		return nil, err
	}
	if err := inOrder("outcomes", len(outs), len(body.Results), func(i int) int { return body.Results[i].Index }); err != nil {
		return nil, err
	}
	res := make([]OutcomeResult, len(outs))
	for i, r := range body.Results {
		res[i] = OutcomeResult{Index: i, Decisions: r.Decisions}
		switch {
		case r.Error != nil:
			r.Error.Status = map[string]int{"not_found": http.StatusNotFound, "record_unavailable": http.StatusServiceUnavailable}[r.Error.Code]
			if r.Error.Status == 0 {
				r.Error.Status = http.StatusUnprocessableEntity
			}
			res[i].Refusal = r.Error
		case r.Status != "recorded":
			return nil, &ProtocolError{Reason: fmt.Sprintf("result %d has status %q and no error", i, r.Status)}
		}
	}
	return res, nil
}

// inOrder checks that a batch answer has one result per item sent, in the
// order sent (index(i) is result i's index).
func inOrder(what string, sent, got int, index func(i int) int) error {
	if got != sent {
		return &ProtocolError{Reason: fmt.Sprintf("sent %d %s, got %d results", sent, what, got)}
	}
	for i := range got {
		if index(i) != i {
			return &ProtocolError{Reason: fmt.Sprintf("result %d has index %d", i, index(i))}
		}
	}
	return nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	payload, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &UnavailableError{Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return &UnavailableError{Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return errorFrom(resp, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &ProtocolError{Reason: "undecodable response: " + err.Error()}
	}
	return nil
}

// errorFrom reads the service's one error shape; a body in another shape
// (a proxy's HTML page, say) still yields the status.
func errorFrom(resp *http.Response, raw []byte) error {
	var body struct {
		Error     APIError `json:"error"`
		RequestID string   `json:"request_id"`
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		*e = body.Error
		e.Status = resp.StatusCode
		e.RequestID = body.RequestID
	} else {
		e.Code = "http_" + fmt.Sprint(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.retryAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}
