package kubetest_test

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/berth-dev/berth/internal/kubetest"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestClusterRunsPodAndExecs is the cluster's smoke test: a Pod from a
// locally built image is scheduled onto the node, runs in a sandbox made
// from the locally built pause image, and a command runs in it through the
// API server's exec subresource.
func TestClusterRunsPodAndExecs(t *testing.T) {
	cfg, cs := kubetest.Clientset(t)
	ctx := testctx.Context(t)
	ns := kubetest.Namespace(t, cs)

	var zero int64
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           kubetest.BusyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sleep", "3600"},
			}},
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  new(false),
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	running := kubetest.WaitRunning(t, cs, ns, pod.Name)
	if running.Spec.NodeName == "" {
		t.Fatalf("running pod has no node: %+v", running.Spec)
	}

	stdout, stderr, err := kubetest.Exec(ctx, cfg, cs, ns, pod.Name, "main", []string{"echo", "hi"}, nil)
	if err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, stderr)
	}
	if got := string(stdout); got != "hi\n" {
		t.Fatalf("exec stdout = %q, want %q (stderr %q)", got, "hi\n", stderr)
	}

	// stdin reaches the command, and a failing command's exit code comes back.
	stdout, _, err = kubetest.Exec(ctx, cfg, cs, ns, pod.Name, "main", []string{"cat"}, strings.NewReader("from stdin"))
	if err != nil || string(stdout) != "from stdin" {
		t.Fatalf("exec cat = %q, %v; want %q", stdout, err, "from stdin")
	}
	_, _, err = kubetest.Exec(ctx, cfg, cs, ns, pod.Name, "main", []string{"sh", "-c", "exit 3"}, nil)
	var exit utilexec.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Fatalf("exec exit 3: err = %v, want an ExitError with status 3", err)
	}
}
