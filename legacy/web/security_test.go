package web_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCrossSitePostIsRefused: a form post that a browser says comes from
// another site is refused before anything is kept or sent for decision.
func TestCrossSitePostIsRefused(t *testing.T) {
	svc := &countingService{}
	form, q := newForm(t, svc, time.Second)
	post := func(id string, header map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, form.URL+"/applications", strings.NewReader(values(id).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for name, h := range map[string]map[string]string{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": "same-site"},
		"foreign Origin":            {"Origin": "http://evil.example"},
	} {
		if resp := post("X-"+strings.ReplaceAll(name, " ", "-"), h); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
		}
	}
	if n := svc.calls.Load(); n != 0 {
		t.Errorf("cross-site posts reached the service %d times", n)
	}
	if waiting, _ := q.Waiting(); len(waiting) != 0 {
		t.Errorf("cross-site posts kept %d applications", len(waiting))
	}
	// The form's own pages still post.
	u, _ := url.Parse(form.URL)
	if resp := post("X-own", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + u.Host}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin post: status %d, want 303", resp.StatusCode)
	}
}

// TestGuessedReferenceShowsNothing: an application's page shows its
// figures and decision only with the application's key, which the officer
// who submitted it got in the page's address.
func TestGuessedReferenceShowsNothing(t *testing.T) {
	form, _ := newForm(t, &countingService{}, time.Second)
	v := values("A-1001")
	v.Set("income", "54321")
	resp, _ := submit(t, form.URL, v)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "key=") {
		t.Fatalf("status %d location %q", resp.StatusCode, loc)
	}
	get := func(path string) (int, string) {
		t.Helper()
		r, err := http.Get(form.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	unknown, unknownBody := get("/applications/A-9999")
	for _, guess := range []string{"/applications/A-1001", "/applications/A-1001?key=", "/applications/A-1001?key=AAAAAAAAAAAAAAAAAAAAAA"} {
		status, body := get(guess)
		if status != http.StatusNotFound || strings.Contains(body, "54321") || strings.Contains(body, "Approved") {
			t.Errorf("%s: status %d, shows the application:\n%s", guess, status, body)
		}
		if status != unknown || body != unknownBody {
			t.Errorf("%s answers differently from an unknown reference: it tells that A-1001 exists", guess)
		}
	}
	status, body := get(loc)
	if status != http.StatusOK || !strings.Contains(body, "54321") || !strings.Contains(body, "Approved") {
		t.Errorf("with its key: status %d\n%s", status, body)
	}
	// The page's own links keep the key.
	if !strings.Contains(body, `href="`+strings.ReplaceAll(loc, "&", "&amp;")+`"`) {
		t.Errorf("the Reload link lost the key:\n%s", body)
	}
}
