// Package scripts holds no Go code: its tests check the shell helpers beside
// them (onnxruntime.sh, apt-install.sh) the way make calls them.
package scripts
