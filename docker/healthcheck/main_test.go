package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		addr, out string
		bad       bool
	}{
		{nil, "", "http://127.0.0.1:8000/ready", false},
		{nil, ":9001", "http://127.0.0.1:9001/ready", false},
		{nil, "0.0.0.0:8000", "http://127.0.0.1:8000/ready", false},
		{[]string{"http://127.0.0.1:8080/"}, ":9001", "http://127.0.0.1:8080/", false},
		{nil, "8000", "", true},
		{[]string{"a", "b"}, "", "", true},
	} {
		got, err := target(tc.args, tc.addr)
		if (err != nil) != tc.bad || got != tc.out {
			t.Errorf("target(%v, %q) = %q, %v", tc.args, tc.addr, got, err)
		}
	}
}

func TestProbe(t *testing.T) {
	status := http.StatusServiceUnavailable
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer s.Close()
	if err := probe([]string{s.URL}, ""); err == nil {
		t.Fatal("503 passed")
	}
	status = http.StatusOK
	if err := probe([]string{s.URL}, ""); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := probe([]string{s.URL}, ""); err == nil {
		t.Fatal("a closed server passed")
	}
}
