// Command k6suite-node is a Kubernetes node (virtual-kubelet) whose pods are local processes.
//
// The control plane schedules pods onto this node as onto any kubelet; the node runs each container
// as a process of the build its image names (--images, a JSON map: image repository -> the build's
// binary, and the ENV and EXPOSE the image would carry, see imageSpec), with the pod's
// resolved env and args, restarts it as the pod's restartPolicy says, runs its readiness probe
// (httpGet, tcpSocket), stops it on deletion with SIGTERM and, after the deletion's grace period,
// SIGKILL, and reports the pod's status as it is: phase, ready condition, restart counts, exit codes.
//
// Networking: every pod's IP is 127.0.0.1, and each pod gets its own block of --port-span ports from
// --port-base (its "slot"); container port N of a pod becomes 127.0.0.1:<slot port>, and the node
// rewrites every env value and argument that names a declared container port as a listen address
// (":N", "0.0.0.0:N", or just "N") to that address or port, so the process binds and advertises its own
// port. Ports a container listens on without declaring them would collide between pods (each has no
// network namespace of its own), so the image's exposed ports are handled as declared ones. The current map (pod -> slot, ports, PIDs) is kept in <state-dir>/pods.json. Services named
// with --service NAMESPACE/NAME:PORT=LOCALPORT are reachable on 127.0.0.1:LOCALPORT, which forwards each
// connection to a ready pod the Service selects (round robin): the node's stand-in for kube-proxy.
//
// What it does not do: no images (an image is only a name for a local build), no volumes (a
// container's working directory and TMPDIR are a scratch dir of its own; volume mounts are ignored),
// no cgroups, namespaces or resource limits, no liveness or startup probes, no exec probes, no logs or
// exec API, no DNS (cluster names do not resolve; Services are reached through --service ports).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/log"
	logruslogger "github.com/virtual-kubelet/virtual-kubelet/log/logrus"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

const host = "127.0.0.1"

type serviceFlag []string

func (s *serviceFlag) String() string     { return strings.Join(*s, ",") }
func (s *serviceFlag) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the control plane")
		name       = flag.String("name", "k6suite-node", "node name")
		images     = flag.String("images", "", "JSON file: image repository -> {binary, env, exposed}")
		stateDir   = flag.String("state-dir", "", "scratch dirs, logs and pods.json")
		portBase   = flag.Int("port-base", 0, "first port of the pods' port blocks")
		portSpan   = flag.Int("port-span", 10, "ports per pod")
		slots      = flag.Int("slots", 20, "pods at once (port blocks)")
		services   serviceFlag
	)
	flag.Var(&services, "service", "NAMESPACE/NAME:PORT=LOCALPORT, repeatable")
	flag.Parse()
	if *images == "" || *stateDir == "" || *portBase == 0 {
		fmt.Fprintln(os.Stderr, "--images, --state-dir and --port-base are required")
		os.Exit(2)
	}
	logger := logrus.StandardLogger()
	log.L = logruslogger.FromLogrus(logrus.NewEntry(logger))

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	prov := newProvider(*images, *stateDir, *portBase, *portSpan, *slots)
	client, err := nodeutil.ClientsetFromEnv(*kubeconfig)
	if err != nil {
		logger.Fatal(err)
	}
	prov.removeObject = func(pod *corev1.Pod) error {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		now := int64(0)
		return client.CoreV1().Pods(pod.Namespace).Delete(rctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &now, Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
	}
	var svcLister func(ns, name string) (*corev1.Service, error)
	n, err := nodeutil.NewNode(*name, func(cfg nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		describeNode(cfg.Node, *slots)
		svcLister = func(ns, name string) (*corev1.Service, error) { return cfg.Services.Services(ns).Get(name) }
		prov.apiPods = cfg.Pods
		return prov, nil, nil
	}, withClient(client))
	if err != nil {
		logger.Fatal(err)
	}
	for _, spec := range services {
		if err := prov.forwardService(ctx, spec, svcLister); err != nil {
			logger.Fatal(err)
		}
	}
	go func() {
		<-ctx.Done()
		prov.stopAll()
	}()
	if err := n.Run(ctx); err != nil && ctx.Err() == nil {
		prov.stopAll()
		logger.Fatal(err)
	}
	prov.stopAll()
}

func withClient(client *kubernetes.Clientset) nodeutil.NodeOpt {
	return func(cfg *nodeutil.NodeConfig) error {
		cfg.Client = client
		cfg.NumWorkers = 4
		return nil
	}
}

func describeNode(n *corev1.Node, slots int) {
	n.Status.Capacity = corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   *resource.NewQuantity(int64(slots), resource.DecimalSI),
	}
	n.Status.Allocatable = n.Status.Capacity
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}}
	n.Status.NodeInfo.OperatingSystem = "linux"
	n.Status.NodeInfo.Architecture = "amd64"
	n.Status.NodeInfo.KubeletVersion = "v1.34.2-k6suite-node"
}

// ---------------------------------------------------------------------------------------------- pods

type container struct {
	spec         corev1.Container
	argv         []string
	env          []string
	dir, logPath string
	cmd          *exec.Cmd
	state        corev1.ContainerState
	last         corev1.ContainerState
	restarts     int32
	ready        bool
	stopping     bool
	exited       chan struct{}
}

type podRun struct {
	mu         sync.Mutex
	pod        *corev1.Pod
	slot       int
	ports      map[int32]int32 // container port -> local port
	containers []*container
	started    time.Time
	deleted    bool
	freed      bool          // its port block is given back (once: a pod can be stopped twice at once)
	done       chan struct{} // closed when the pod is deleted: stops probes and restarts
}

// imageSpec is what an image means here: a local build, and the ENV and EXPOSE of its image config
// (settings every container of the image gets unless the pod sets them, ports it listens on).
type imageSpec struct {
	Binary  string            `json:"binary"`
	Env     map[string]string `json:"env"`
	Exposed []int32           `json:"exposed"`
}

type provider struct {
	mu                 sync.Mutex
	imagesPath         string
	stateDir           string
	portBase, portSpan int
	slots              []bool
	pods               map[string]*podRun // namespace/name -> run
	notify             func(*corev1.Pod)
	removeObject       func(*corev1.Pod) error // deletes a pod's API object at once (this uid only)
	apiPods            corev1listers.PodLister // the node's view of the API's pods (virtual-kubelet's informer)
}

func newProvider(imagesPath, stateDir string, portBase, portSpan, slots int) *provider {
	return &provider{imagesPath: imagesPath, stateDir: stateDir, portBase: portBase, portSpan: portSpan,
		slots: make([]bool, slots), pods: map[string]*podRun{}, notify: func(*corev1.Pod) {}}
}

func key(ns, name string) string { return ns + "/" + name }

func imageRepository(image string) string {
	if at := strings.Index(image, "@"); at >= 0 {
		image = image[:at]
	}
	if colon := strings.LastIndex(image, ":"); colon > strings.LastIndex(image, "/") {
		image = image[:colon]
	}
	return image
}

// images reads the image map when a pod starts: the builds it names may be made after the node started.
func (p *provider) images() (map[string]imageSpec, error) {
	images := map[string]imageSpec{}
	raw, err := os.ReadFile(p.imagesPath)
	if err == nil {
		err = json.Unmarshal(raw, &images)
	}
	return images, err
}

func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	images, err := p.images()
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.pods[k]
	p.mu.Unlock()
	if old != nil && old.pod.UID != pod.UID {
		// the API object of the old pod is gone (a grace-0 deletion) and a new one took its name
		p.terminate(old, 0)
	} else if old != nil {
		return nil
	}
	run := &podRun{pod: pod.DeepCopy(), started: time.Now(), ports: map[int32]int32{}, done: make(chan struct{})}
	p.mu.Lock()
	run.slot = -1
	for i, used := range p.slots {
		if !used {
			run.slot, p.slots[i] = i, true
			break
		}
	}
	if run.slot < 0 {
		p.mu.Unlock()
		return fmt.Errorf("no free port block for pod %s (%d slots)", k, len(p.slots))
	}
	p.pods[k] = run
	p.mu.Unlock()

	next := int32(p.portBase + run.slot*p.portSpan)
	for _, c := range pod.Spec.Containers {
		ports := images[imageRepository(c.Image)].Exposed
		for _, port := range c.Ports {
			ports = append(ports, port.ContainerPort)
		}
		for _, port := range ports {
			if _, ok := run.ports[port]; !ok {
				if next >= int32(p.portBase+(run.slot+1)*p.portSpan) {
					return p.fail(run, fmt.Errorf("pod %s listens on more than %d ports", k, p.portSpan))
				}
				run.ports[port] = next
				next++
			}
		}
	}
	dir := filepath.Join(p.stateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	for _, spec := range pod.Spec.Containers {
		image, ok := images[imageRepository(spec.Image)]
		if !ok {
			return p.fail(run, fmt.Errorf("image %s: no local build for %s", spec.Image, imageRepository(spec.Image)))
		}
		c := &container{spec: spec, dir: filepath.Join(dir, spec.Name), logPath: filepath.Join(dir, spec.Name+".log")}
		c.argv = []string{image.Binary}
		if len(spec.Command) > 1 {
			c.argv = append(c.argv, run.rewriteAll(spec.Command[1:])...)
		}
		c.argv = append(c.argv, run.rewriteAll(spec.Args)...)
		c.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "TMPDIR=" + c.dir}
		for name, value := range image.Env {
			c.env = append(c.env, name+"="+run.rewrite(value))
		}
		for _, e := range spec.Env { // later entries win
			c.env = append(c.env, e.Name+"="+run.rewrite(e.Value))
		}
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return p.fail(run, err)
		}
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
		run.containers = append(run.containers, c)
	}
	run.mu.Lock()
	for _, c := range run.containers {
		p.start(run, c)
	}
	run.mu.Unlock()
	p.changed(run)
	return nil
}

// fail records a pod the node cannot run as Failed, with the reason, so its status says why.
func (p *provider) fail(run *podRun, err error) error {
	run.mu.Lock()
	run.pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "NodeCannotRun", Message: err.Error(),
		HostIP: host, PodIP: host}
	run.mu.Unlock()
	p.changed(run)
	return nil
}

// rewrite turns a value naming a declared container port as an address or port into the pod's own one.
func (run *podRun) rewrite(value string) string {
	if eq := strings.Index(value, "="); eq > 0 && strings.HasPrefix(value, "-") {
		return value[:eq+1] + run.rewrite(value[eq+1:])
	}
	for _, prefix := range []string{":", "0.0.0.0:", "[::]:", host + ":"} {
		if rest, ok := strings.CutPrefix(value, prefix); ok {
			if local, ok := run.local(rest); ok {
				return fmt.Sprintf("%s:%d", host, local)
			}
		}
	}
	if local, ok := run.local(value); ok {
		return strconv.Itoa(int(local))
	}
	return value
}

func (run *podRun) rewriteAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = run.rewrite(v)
	}
	return out
}

func (run *podRun) local(port string) (int32, bool) {
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0, false
	}
	local, ok := run.ports[int32(n)]
	return local, ok
}

// resolvePort maps a probe's or Service's port (number or container port name) to the pod's local port.
func (run *podRun) resolvePort(port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.String {
		for _, c := range run.pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == port.StrVal {
					return run.ports[cp.ContainerPort], true
				}
			}
		}
		return 0, false
	}
	local, ok := run.ports[port.IntVal]
	return local, ok
}

// start runs a container's process; run.mu is held.
func (p *provider) start(run *podRun, c *container) {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}}
		return
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = c.env, c.dir, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}}
		return
	}
	c.cmd, c.ready, c.exited = cmd, false, make(chan struct{})
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaNow()}}
	exited := c.exited
	go func() {
		err := cmd.Wait()
		logFile.Close()
		code := int32(0)
		if exitErr, ok := err.(*exec.ExitError); ok {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int32(ws.Signal())
			} else {
				code = int32(exitErr.ExitCode())
			}
		} else if err != nil {
			code = -1
		}
		p.exited(run, c, cmd, code)
		close(exited)
	}()
	if probe := c.spec.ReadinessProbe; probe != nil {
		go p.probe(run, c, cmd, probe)
	} else {
		c.ready = true
	}
}

func (p *provider) exited(run *podRun, c *container, cmd *exec.Cmd, code int32) {
	run.mu.Lock()
	if c.cmd != cmd {
		run.mu.Unlock()
		return
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	started := metaNow()
	if c.state.Running != nil {
		started = c.state.Running.StartedAt
	}
	c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason,
		StartedAt: started, FinishedAt: metaNow(), ContainerID: fmt.Sprintf("process://%d", cmd.Process.Pid)}}
	c.ready, c.cmd = false, nil
	policy := run.pod.Spec.RestartPolicy
	restart := !c.stopping && !run.deleted && (policy == corev1.RestartPolicyAlways ||
		(policy == corev1.RestartPolicyOnFailure && code != 0))
	run.mu.Unlock()
	p.changed(run)
	if !restart {
		return
	}
	// back off as a kubelet does, shorter: 1 s doubling to 30 s
	delay := time.Second << min(c.restarts, 5)
	if delay > 30*time.Second {
		delay = 30 * time.Second
	}
	go func() {
		select {
		case <-run.done:
			return
		case <-time.After(delay):
		}
		run.mu.Lock()
		if run.deleted || c.stopping {
			run.mu.Unlock()
			return
		}
		c.last, c.restarts = c.state, c.restarts+1
		p.start(run, c)
		run.mu.Unlock()
		p.changed(run)
	}()
}

func (p *provider) probe(run *podRun, c *container, cmd *exec.Cmd, probe *corev1.Probe) {
	period := time.Duration(max(probe.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	failures, successes := int32(0), int32(0)
	select {
	case <-time.After(time.Duration(probe.InitialDelaySeconds) * time.Second):
	case <-run.done:
		return
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		run.mu.Lock()
		current := c.cmd == cmd
		run.mu.Unlock()
		if !current {
			return
		}
		ok := p.check(run, probe, timeout)
		if ok {
			successes, failures = successes+1, 0
		} else {
			failures, successes = failures+1, 0
		}
		run.mu.Lock()
		changed := false
		if c.cmd == cmd && ok && !c.ready && successes >= max(probe.SuccessThreshold, 1) {
			c.ready, changed = true, true
		} else if c.cmd == cmd && !ok && c.ready && failures >= max(probe.FailureThreshold, 1) {
			c.ready, changed = false, true
		}
		run.mu.Unlock()
		if changed {
			p.changed(run)
		}
		select {
		case <-ticker.C:
		case <-run.done:
			return
		}
	}
}

func (p *provider) check(run *podRun, probe *corev1.Probe, timeout time.Duration) bool {
	switch {
	case probe.HTTPGet != nil:
		port, ok := run.resolvePort(probe.HTTPGet.Port)
		if !ok {
			return false
		}
		client := http.Client{Timeout: timeout}
		resp, err := client.Get(fmt.Sprintf("http://%s:%d%s", host, port, probe.HTTPGet.Path))
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	case probe.TCPSocket != nil:
		port, ok := run.resolvePort(probe.TCPSocket.Port)
		if !ok {
			return false
		}
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", host, port), timeout)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	return false // exec and gRPC probes are not run: never ready rather than falsely ready
}

// terminate stops every container of a pod: SIGTERM, then SIGKILL after grace seconds; it returns once
// all its processes are gone, and frees the pod's port block.
func (p *provider) terminate(run *podRun, grace int64) {
	run.mu.Lock()
	if !run.deleted {
		run.deleted = true
		close(run.done)
	}
	var waits []chan struct{}
	for _, c := range run.containers {
		c.stopping = true
		if c.cmd != nil {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
			if grace <= 0 {
				_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			}
			waits = append(waits, c.exited)
		}
	}
	procs := []*exec.Cmd{}
	for _, c := range run.containers {
		if c.cmd != nil {
			procs = append(procs, c.cmd)
		}
	}
	run.mu.Unlock()
	deadline := time.After(time.Duration(max(grace, 0)) * time.Second)
	for i, w := range waits {
		select {
		case <-w:
		case <-deadline:
			_ = syscall.Kill(-procs[i].Process.Pid, syscall.SIGKILL)
			<-w
		}
	}
	p.mu.Lock()
	k := key(run.pod.Namespace, run.pod.Name)
	if p.pods[k] == run {
		delete(p.pods, k)
	}
	if !run.freed {
		run.freed, p.slots[run.slot] = true, false
	}
	p.mu.Unlock()
	p.saveState()
}

func (p *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error { return nil }

// DeletePod stops the pod's processes (SIGTERM, SIGKILL when the grace runs out) and, once they are gone,
// removes the pod's API object, as a kubelet does. virtual-kubelet itself removes the object only a grace
// period after DeletePod returns (it expects a provider to stop a pod within that time), which would keep
// a StatefulSet from making the pod again for a second grace period. The object goes only after the pod
// has left the node's table: a pod made again under the same name is then created, not taken for the old.
func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	run := p.pods[key(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if run == nil || run.pod.UID != pod.UID {
		return errdefs.NotFoundf("pod %s/%s is not running here", pod.Namespace, pod.Name)
	}
	grace := int64(0) // an object deleted without a graceful phase (grace 0) is killed at once
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	}
	p.terminate(run, grace)
	run.mu.Lock()
	run.pod.DeletionTimestamp, run.pod.DeletionGracePeriodSeconds = pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds
	run.mu.Unlock()
	p.notifyRun(run)
	if err := p.removeObject(pod); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		log.G(ctx).WithError(err).Warnf("pod %s/%s stopped; its API object stays until virtual-kubelet removes it",
			pod.Namespace, pod.Name)
	}
	return nil
}

// GetPod answers for the pod that holds the name in the API now. A run whose API object was deleted
// with grace 0 and made again under its name (a StatefulSet does so within milliseconds) is not that
// pod: virtual-kubelet asks for a pod by name only, and handed the old run it would take the new pod
// for a running one and never create it, leaving the old process running and the new pod Pending
// (seen under load: the deletion's sync ran after the informer had the new pod). Not found here, the
// new pod is created, and CreatePod stops the old run first.
func (p *provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	run := p.pods[key(namespace, name)]
	p.mu.Unlock()
	if run == nil || p.replaced(run) {
		return nil, errdefs.NotFoundf("pod %s/%s is not running here", namespace, name)
	}
	return run.snapshot(), nil
}

// replaced says whether the API holds another pod (another uid) under the run's name.
func (p *provider) replaced(run *podRun) bool {
	if p.apiPods == nil {
		return false
	}
	now, err := p.apiPods.Pods(run.pod.Namespace).Get(run.pod.Name)
	return err == nil && now.UID != run.pod.UID
}

func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, run := range p.pods {
		runs = append(runs, run)
	}
	p.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(runs))
	for _, run := range runs {
		pods = append(pods, run.snapshot())
	}
	return pods, nil
}

// The kubelet API beside pods (logs, exec, attach, stats, port-forward) is not offered: a pod's output
// is in <state-dir>/pods/<pod>/<container>.log.
var errNoKubeletAPI = errdefs.InvalidInput("not offered by k6suite-node: logs are files in its state dir")

func (p *provider) GetContainerLogs(context.Context, string, string, string, api.ContainerLogOpts) (io.ReadCloser, error) {
	return nil, errNoKubeletAPI
}

func (p *provider) RunInContainer(context.Context, string, string, string, []string, api.AttachIO) error {
	return errNoKubeletAPI
}

func (p *provider) AttachToContainer(context.Context, string, string, string, api.AttachIO) error {
	return errNoKubeletAPI
}

func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return nil, errNoKubeletAPI
}

func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, errNoKubeletAPI
}

func (p *provider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return errNoKubeletAPI
}

func (p *provider) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) { p.notify = cb }

func (p *provider) changed(run *podRun) {
	p.saveState()
	p.notifyRun(run)
}

// notifyRun reports the run's status, unless its name now belongs to another pod: virtual-kubelet keys
// statuses by name and would take the old process's for the new pod's.
func (p *provider) notifyRun(run *podRun) {
	if !p.replaced(run) {
		p.notify(run.snapshot())
	}
}

// snapshot is the pod with its status as the processes are now.
func (run *podRun) snapshot() *corev1.Pod {
	run.mu.Lock()
	defer run.mu.Unlock()
	pod := run.pod.DeepCopy()
	if pod.Status.Phase == corev1.PodFailed && pod.Status.Reason == "NodeCannotRun" {
		return pod
	}
	started := metaTime(run.started)
	status := corev1.PodStatus{HostIP: host, HostIPs: []corev1.HostIP{{IP: host}}, PodIP: host,
		PodIPs: []corev1.PodIP{{IP: host}}, StartTime: &started, QOSClass: corev1.PodQOSBestEffort}
	allReady, running, failed, pending := true, 0, 0, 0
	for _, c := range run.containers {
		cs := corev1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, ImageID: "local://" + c.argv[0],
			Ready: c.ready, RestartCount: c.restarts, State: c.state, LastTerminationState: c.last}
		if c.cmd != nil {
			cs.ContainerID = fmt.Sprintf("process://%d", c.cmd.Process.Pid)
			started := true
			cs.Started = &started
		}
		switch {
		case c.state.Running != nil:
			running++
		case c.state.Terminated != nil && c.state.Terminated.ExitCode != 0:
			failed++
		case c.state.Waiting != nil:
			pending++
		}
		allReady = allReady && c.ready
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}
	restarting := !run.deleted && pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	switch {
	case running > 0 || (restarting && failed+pending < len(run.containers)) || (restarting && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways):
		status.Phase = corev1.PodRunning
	case pending > 0:
		status.Phase = corev1.PodPending
	case failed > 0:
		status.Phase = corev1.PodFailed
	default:
		status.Phase = corev1.PodSucceeded
	}
	if pending == len(run.containers) {
		status.Phase = corev1.PodPending
	}
	ready := corev1.ConditionFalse
	if allReady && running == len(run.containers) && !run.deleted {
		ready = corev1.ConditionTrue
	}
	now := metaNow()
	status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
		{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
	}
	pod.Status = status
	return pod
}

// saveState writes pods.json: each pod's slot, its local ports and its containers' PIDs.
func (p *provider) saveState() {
	type entry struct {
		UID   string           `json:"uid"`
		Slot  int              `json:"slot"`
		Ports map[string]int32 `json:"ports"`
		PIDs  map[string]int   `json:"pids"`
		Ready bool             `json:"ready"`
	}
	p.mu.Lock()
	runs := make(map[string]*podRun, len(p.pods))
	for k, run := range p.pods {
		runs[k] = run
	}
	p.mu.Unlock()
	out := map[string]entry{}
	for k, run := range runs {
		run.mu.Lock()
		e := entry{UID: string(run.pod.UID), Slot: run.slot, Ports: map[string]int32{}, PIDs: map[string]int{}, Ready: !run.deleted}
		for port, local := range run.ports {
			e.Ports[strconv.Itoa(int(port))] = local
		}
		for _, c := range run.containers {
			if c.cmd != nil {
				e.PIDs[c.spec.Name] = c.cmd.Process.Pid
			}
			e.Ready = e.Ready && c.ready
		}
		run.mu.Unlock()
		out[k] = e
	}
	data, _ := json.MarshalIndent(out, "", "  ")
	tmp := filepath.Join(p.stateDir, ".pods.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		_ = os.Rename(tmp, filepath.Join(p.stateDir, "pods.json"))
	}
}

func (p *provider) stopAll() {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, run := range p.pods {
		runs = append(runs, run)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func(run *podRun) {
			defer wg.Done()
			p.terminate(run, 3)
		}(run)
	}
	wg.Wait()
}

// ---------------------------------------------------------------------------------------------- services

// forwardService serves a Service's port on 127.0.0.1:LOCALPORT, forwarding each connection to a ready
// pod the Service selects, round robin.
func (p *provider) forwardService(ctx context.Context, spec string, lookup func(ns, name string) (*corev1.Service, error)) error {
	target, local, ok := strings.Cut(spec, "=")
	svcRef, portText, ok2 := strings.Cut(target, ":")
	ns, name, ok3 := strings.Cut(svcRef, "/")
	port, err := strconv.Atoi(portText)
	if !ok || !ok2 || !ok3 || err != nil {
		return fmt.Errorf("--service %q: want NAMESPACE/NAME:PORT=LOCALPORT", spec)
	}
	listener, err := net.Listen("tcp", host+":"+local)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		listener.Close()
	}()
	var turn int
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			backends := p.endpoints(ns, name, int32(port), lookup)
			if len(backends) == 0 {
				conn.Close()
				continue
			}
			turn++
			go splice(conn, backends[turn%len(backends)])
		}
	}()
	return nil
}

func (p *provider) endpoints(ns, name string, port int32, lookup func(ns, name string) (*corev1.Service, error)) []string {
	svc, err := lookup(ns, name)
	if err != nil || len(svc.Spec.Selector) == 0 {
		return nil
	}
	var targetPort intstr.IntOrString
	found := false
	for _, sp := range svc.Spec.Ports {
		if sp.Port == port {
			targetPort, found = sp.TargetPort, true
			if targetPort.Type == intstr.Int && targetPort.IntVal == 0 {
				targetPort = intstr.FromInt32(port)
			}
		}
	}
	if !found {
		return nil
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	p.mu.Lock()
	runs := []*podRun{}
	for _, run := range p.pods {
		if run.pod.Namespace == ns && selector.Matches(labels.Set(run.pod.Labels)) {
			runs = append(runs, run)
		}
	}
	p.mu.Unlock()
	var out []string
	for _, run := range runs {
		pod := run.snapshot()
		if pod.DeletionTimestamp != nil || !podReady(pod) {
			continue
		}
		run.mu.Lock()
		local, ok := run.resolvePort(targetPort)
		run.mu.Unlock()
		if ok {
			out = append(out, fmt.Sprintf("%s:%d", host, local))
		}
	}
	return out
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func splice(client net.Conn, backend string) {
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
}

func metaNow() metav1.Time { return metav1.NewTime(time.Now()) }

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t) }
