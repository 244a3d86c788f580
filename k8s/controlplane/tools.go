//go:build tools

// Package controlplane pins the Kubernetes control-plane commands that bin/bootstrap builds
// (k6suite stack install), so that go.mod/go.sum record every module they need.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
