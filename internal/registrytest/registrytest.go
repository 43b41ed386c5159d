// Package registrytest holds the small artifacts tree the registry tests
// share: one model with two versions, the second with a file in a
// subdirectory (as ONNX external data would be).
package registrytest

import "testing/fstest"

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
