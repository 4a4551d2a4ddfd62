// Package kubetest connects tests to the one-node Kubernetes cluster that
// .ci/kube-up builds and starts on this machine (see docs/development.md):
// a real API server, kubelet and containerd, never a fake clientset.
//
// Tests that need the cluster call Config or Clientset first. Without
// BERTH_TEST_KUBE=1 they skip, saying how to bring the cluster up; with it,
// an unreachable cluster fails the test under CI=true (the cluster was
// promised) and skips loudly elsewhere.
package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/berth-dev/berth/internal/testctx"
)

const (
	// EnvEnable turns the cluster's tests on: .ci/kube-up prints it for
	// export once the cluster answers, and .ci/run exports it after
	// starting the cluster.
	EnvEnable = "BERTH_TEST_KUBE"
	// EnvKubeconfig overrides the admin kubeconfig's path.
	EnvKubeconfig = "BERTH_TEST_KUBECONFIG"
	// DefaultKubeconfig is where .ci/kube-up writes the admin kubeconfig.
	DefaultKubeconfig = "/var/lib/berth-kube/admin.kubeconfig"

	// BusyboxImage is a busybox-static image that .ci/kube-up loads into
	// the node's containerd (nothing is pulled: no registry is reachable).
	// Its commands are busybox applets under /bin: sh, echo, sleep, cat, ...
	BusyboxImage = "berth.local/kube-busybox:1"
	// PauseImage is the Pod sandbox image, built by .ci/kube-up as well.
	PauseImage = "berth.local/kube-pause:1"
)

// Kubeconfig is the admin kubeconfig's path.
func Kubeconfig() string {
	if p := os.Getenv(EnvKubeconfig); p != "" {
		return p
	}
	return DefaultKubeconfig
}

// Enabled reports whether BERTH_TEST_KUBE asks for the cluster's tests.
func Enabled() bool {
	v := strings.ToLower(os.Getenv(EnvEnable))
	return v == "1" || v == "true"
}

func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Config returns the admin rest.Config of the test cluster after checking
// that its API server answers; see the package doc for when it skips or
// fails instead.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	if !Enabled() {
		t.Skipf("SKIPPED, no Kubernetes test cluster: %s is not set (bring one up with .ci/kube-up, then export %s=1)", EnvEnable, EnvEnable)
	}
	unreachable := func(err error) {
		t.Helper()
		msg := fmt.Sprintf("KUBERNETES TEST CLUSTER UNREACHABLE (%s=1, kubeconfig %s): %v — start it with .ci/kube-up (logs in /tmp/berth-kube)", EnvEnable, Kubeconfig(), err)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, " + msg)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", Kubeconfig())
	if err != nil {
		unreachable(err)
	}
	// Tests create and watch many objects at once: client-go's default of
	// 5 requests a second would make them wait on the client, not the cluster.
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		unreachable(err)
	}
	// A minute: an API server that answers slowly on a busy machine is there.
	ctx, cancel := context.WithTimeout(testctx.Context(t), time.Minute)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		unreachable(err)
	}
	return cfg
}

// Clientset returns a clientset for the test cluster (see Config).
func Clientset(t testing.TB) (*rest.Config, *kubernetes.Clientset) {
	t.Helper()
	cfg := Config(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cs
}

// Namespace creates a namespace with a unique name for the test and deletes
// it, with everything in it, when the test ends. It returns once the
// namespace's default ServiceAccount exists: until the controller manager
// has made it, the API server refuses Pods there.
func Namespace(t testing.TB, cs kubernetes.Interface) string {
	t.Helper()
	ctx := testctx.Context(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "berth-test-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12],
		Labels: map[string]string{"berth.dev/test": "true"},
	}}
	created, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	name := created.Name
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	testctx.Eventually(t, "namespace "+name+"'s default ServiceAccount", func() bool {
		_, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return name
}

// WaitRunning waits until the Pod runs and returns it; a Pod that fails or
// ends first fails the test with its status.
func WaitRunning(t testing.TB, cs kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	ctx := testctx.Context(t)
	var pod *corev1.Pod
	testctx.Eventually(t, "pod "+ns+"/"+name+" running", func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		pod = p
		switch p.Status.Phase {
		case corev1.PodRunning:
			return true
		case corev1.PodFailed, corev1.PodSucceeded:
			t.Fatalf("pod %s/%s ended (%s) before running: %+v", ns, name, p.Status.Phase, p.Status)
		}
		return false
	})
	return pod
}

// Exec runs cmd in a container of a Pod through the API server's exec
// subresource (the path kubectl exec takes) and returns its output. A
// command that exits non-zero returns an error that wraps
// k8s.io/client-go/util/exec.ExitError.
func Exec(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ns, pod, container string, cmd []string, stdin io.Reader) (stdout, stderr []byte, err error) {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdin:     stdin != nil,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	// WebSocket first, as kubectl does; SPDY where the upgrade is refused.
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return nil, nil, fmt.Errorf("exec: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, nil, fmt.Errorf("exec: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("exec: %w", err)
	}
	var out, errOut bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: &errOut})
	return out.Bytes(), errOut.Bytes(), err
}
