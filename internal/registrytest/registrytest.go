// Package registrytest holds what the registry and rollout tests share: a
// small artifacts tree (one model with two versions, the second with a file
// in a subdirectory, as ONNX external data would be) and a Source whose
// downloads stall.
package registrytest

import (
	"context"
	"sync"
	"testing/fstest"

	"mlservice/registry"
)

// Tree returns a fresh artifacts tree: loan-approval with versions 1 and 2,
// champion 2.
func Tree() fstest.MapFS {
	return fstest.MapFS{
		"loan-approval/registry.json":                  {Data: []byte(`{"name":"loan-approval","aliases":{"champion":"2"},"tags":{}}`)},
		"loan-approval/versions/1/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/1/model.onnx":          {Data: []byte("one")},
		"loan-approval/versions/2/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/2/model.onnx":          {Data: []byte("two")},
		"loan-approval/versions/2/sub/model.onnx.data": {Data: []byte("weights")},
	}
}

// Stalling wraps a registry.Source so that downloads of the versions in
// Stall hang until their context ends, as a download trickling 1 byte/s
// would. Started is closed when the first stalled download begins, Cancelled
// when it ends.
type Stalling struct {
	registry.Source
	Stall     map[string]bool
	Started   chan struct{}
	Cancelled chan struct{}
	once      sync.Once
}

// NewStalling stalls the downloads of versions of src.
func NewStalling(src registry.Source, versions ...string) *Stalling {
	s := &Stalling{Source: src, Stall: map[string]bool{}, Started: make(chan struct{}), Cancelled: make(chan struct{})}
	for _, v := range versions {
		s.Stall[v] = true
	}
	return s
}

// Download implements registry.Source.
func (s *Stalling) Download(ctx context.Context, model, version, dir string) error {
	if !s.Stall[version] {
		return s.Source.Download(ctx, model, version, dir)
	}
	first := false
	s.once.Do(func() { first = true; close(s.Started) })
	<-ctx.Done()
	if first {
		close(s.Cancelled)
	}
	return ctx.Err()
}
