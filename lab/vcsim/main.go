// vcwave-vcsim: a small launcher around govmomi's vCenter simulator (simulator.VPX()).
//
// Built by lab/vcsim.py in GOPATH mode against Debian's golang-github-vmware-govmomi-dev
// (govmomi 0.24.x). Prints ONE JSON line {"url": ..., "port": ...} to stdout once listening,
// then serves until SIGTERM/SIGINT. The password comes from -password or env VCSIM_PASSWORD.
// With -tls-cert/-tls-key it serves https with that certificate (the lab's CA signs it), as a
// vCenter does; without them, plain http.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/vpx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// saltStride is how many moref counter values one -moref-salt unit skips.
const saltStride = 1000

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "vcwave-vcsim: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on (port 0 picks a free port)")
	version := flag.String("version", "6.7.0", "about.version")
	build := flag.String("build", "14367737", "about.build")
	apiVersion := flag.String("api-version", "6.7.3", "about.apiVersion")
	fullName := flag.String("full-name", "", "about.fullName (default derived from version/build)")
	instanceUUID := flag.String("instance-uuid", "", "about.instanceUuid")
	pscHost := flag.String("psc-host", "", "PSC host named by the config.vpxd.sso.* settings")
	user := flag.String("user", "administrator@vsphere.local", "login user")
	password := flag.String("password", "", "login password (default: env VCSIM_PASSWORD)")
	vms := flag.Int("vms", 0, "total inventory VMs, at least this many (0 = VPX default, 4)")
	applianceVMs := flag.String("appliance-vms", "", "comma-separated names of powered-on appliance VMs to add")
	morefSalt := flag.Int("moref-salt", 0, "shift moref ids (a rebuilt vCenter); 0 = normal")
	tlsCert := flag.String("tls-cert", "", "PEM certificate to serve https with (with -tls-key)")
	tlsKey := flag.String("tls-key", "", "PEM key of -tls-cert")
	sessionLog := flag.String("session-log", "", "append every SOAP session id issued (Set-Cookie) to this file")
	hook := flag.String("vm-hook", "", "POST every VM power or current-snapshot change here before its task ends")
	flag.Parse()

	if *password == "" {
		*password = os.Getenv("VCSIM_PASSWORD")
	}
	if *user == "" || *password == "" {
		fatalf("a user and a password (-password or env VCSIM_PASSWORD) are required")
	}
	if *morefSalt < 0 || *vms < 0 {
		fatalf("-vms and -moref-salt must be >= 0")
	}
	if *fullName == "" {
		*fullName = fmt.Sprintf("VMware vCenter Server %s build-%s", *version, *build)
	}
	log.SetOutput(os.Stderr)

	// vcsim stores datastore files under the datastore's path and uses that path in the datastore
	// moref; a relative path inside a private working directory keeps morefs identical across starts.
	work, err := os.MkdirTemp("", "vcwave-vcsim-")
	if err != nil {
		fatalf("temp dir: %v", err)
	}
	if err = os.Chdir(work); err != nil {
		fatalf("chdir: %v", err)
	}
	fail := func(format string, args ...interface{}) {
		_ = os.Chdir(os.TempDir())
		_ = os.RemoveAll(work)
		fatalf(format, args...)
	}

	model := simulator.VPX()
	// VPX default: 1 standalone host + 1 cluster of 3 hosts, 1 DVS portgroup. Datastore and VMs are
	// created below (deterministic ids), not by Model.Create.
	model.Datastore = 0
	model.Machine = 0
	// Each OpaqueNetwork consumes one moref counter value before any host/VM/datastore is created;
	// they are removed again once the model exists, leaving only shifted ids behind.
	model.OpaqueNetwork = *morefSalt * saltStride

	about := &model.ServiceContent.About
	about.Version = *version
	about.Build = *build
	about.ApiVersion = *apiVersion
	about.FullName = *fullName
	if *instanceUUID != "" {
		about.InstanceUuid = *instanceUUID
	}

	if err = model.Create(); err != nil {
		fail("model create: %v", err)
	}

	if *morefSalt > 0 {
		dropOpaqueNetworks()
	}

	nvms := *vms
	if nvms == 0 {
		nvms = 4
	}
	if err = populate(model.Service, fmt.Sprintf("ds%d", *morefSalt), nvms, strings.Split(*applianceVMs, ",")); err != nil {
		fail("populate: %v", err)
	}

	if err = installFetchSafePropertyCollector(); err != nil {
		fail("property collector: %v", err)
	}
	if *hook != "" {
		simulator.Map.AddHandler(&vmHook{url: *hook, client: &http.Client{Timeout: 60 * time.Second},
			snapshots: map[string]bool{}})
	}

	creds := url.UserPassword(*user, *password)
	simulator.DefaultLogin = url.UserPassword(*user, *password)
	// A Listen.User that is not the DefaultLogin pointer makes SessionManager check the password.
	model.Service.Listen = &url.URL{Host: *listen, User: creds}

	scheme := "http"
	if *tlsCert != "" || *tlsKey != "" {
		pair, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fail("tls: %v", err)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		scheme = "https"
	}
	server := newServer(model.Service, fail)
	if *sessionLog != "" {
		// http.Server reads Handler per request, and none has arrived yet (the JSON line is not printed).
		server.Config.Handler = recordSessions(server.Config.Handler, *sessionLog, fail)
	}

	if *pscHost != "" {
		setSSO(*pscHost)
	}

	addr := server.Listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	out, _ := json.Marshal(map[string]interface{}{
		"url":  fmt.Sprintf("%s://%s/sdk", scheme, net.JoinHostPort(host, fmt.Sprint(addr.Port))),
		"port": addr.Port,
	})
	os.Stdout.Write(append(out, '\n'))
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Printf("vcwave-vcsim: %s, stopping", s)
	// No server.Close(): it would wait for in-flight long polls (WaitForUpdatesEx without maxWait).
	server.Listener.Close()
	model.Remove()
	_ = os.Chdir(os.TempDir())
	_ = os.RemoveAll(work)
	os.Exit(0)
}

// fetchSafePC wraps vcsim's PropertyCollector: govmomi 0.24's PropertyCollector.Fetch (used by
// pyVmomi for lazy property reads, e.g. vm.snapshot) panics on an unset property, which drops the
// HTTP connection (RemoteDisconnected). Here an unset property reads back as unset (None) and an
// unknown object as ManagedObjectNotFound. vcsim clones this type per session (by reflection).
type fetchSafePC struct {
	simulator.PropertyCollector
}

var fetchBodyType reflect.Type // internal.FetchBody (the package is internal to govmomi)

func (pc *fetchSafePC) Fetch(ctx *simulator.Context, req interface{}) (res soap.HasFault) {
	defer func() {
		if r := recover(); r == nil {
			return
		}
		this, _ := reflect.ValueOf(req).Elem().FieldByName("This").Interface().(types.ManagedObjectReference)
		body := reflect.New(fetchBodyType)
		if simulator.Map.Get(this) == nil {
			fault := simulator.Fault("", &types.ManagedObjectNotFound{Obj: this})
			body.Elem().FieldByName("Fault_").Set(reflect.ValueOf(fault))
		} else {
			field := body.Elem().FieldByName("Res")
			field.Set(reflect.New(field.Type().Elem())) // FetchResponse with no returnval: unset
		}
		res = body.Interface().(soap.HasFault)
	}()
	return callFetch(&pc.PropertyCollector, ctx, reflect.ValueOf(req))
}

func callFetch(pc *simulator.PropertyCollector, ctx *simulator.Context, req reflect.Value) soap.HasFault {
	out := reflect.ValueOf(pc).MethodByName("Fetch").Call([]reflect.Value{reflect.ValueOf(ctx), req})
	return out[0].Interface().(soap.HasFault)
}

func installFetchSafePropertyCollector() error {
	ref := vpx.ServiceContent.PropertyCollector
	if _, ok := simulator.Map.Get(ref).(*simulator.PropertyCollector); !ok {
		return fmt.Errorf("%s is not a *simulator.PropertyCollector", ref)
	}
	// Learn internal.FetchBody's type from one harmless call (ServiceInstance.content).
	method, _ := reflect.TypeOf(&simulator.PropertyCollector{}).MethodByName("Fetch")
	req := reflect.New(method.Type.In(2).Elem())
	req.Elem().FieldByName("This").Set(reflect.ValueOf(vim25.ServiceInstance))
	req.Elem().FieldByName("Prop").SetString("content")
	body := callFetch(&simulator.PropertyCollector{}, &simulator.Context{Map: simulator.Map}, req)
	fetchBodyType = reflect.TypeOf(body).Elem()

	pc := &fetchSafePC{}
	pc.Self = ref
	simulator.Map.Put(pc)
	return nil
}

// recordSessions appends the value of every vmware_soap_session cookie the simulator sets to path (0600),
// one per line: the lab's record of the SOAP session ids it issued, so that a test can look for each of
// them in every file vcwave wrote (none may appear).
func recordSessions(next http.Handler, path string, fail func(string, ...interface{})) http.Handler {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0600)
	if err != nil {
		fail("session log: %v", err)
	}
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
			if c.Name == soap.SessionCookieName && c.Value != "" {
				mu.Lock()
				fmt.Fprintln(f, c.Value)
				mu.Unlock()
			}
		}
	})
}

// vmHook tells the lab of every change of a VM's power state or current snapshot while the task that made
// it still runs: the registry calls UpdateObject inside the task (before its state is success), so whoever
// waits for the task finds the lab already following the VM (a powered-off appliance refused, a powered-on
// one booting, a reverted one back at the snapshot's version). A lab that learned it by watching tasks
// afterwards missed quick off-and-on cycles and applied changes after the caller had looked at the node.
// The lab's handler must not call this simulator back: the VM is locked until it answers.
//
// A current snapshot never seen before was just taken ("snapshot"); one seen before, changed alone, was
// reverted to ("revert"); changed with the snapshot tree, the current one was removed (not a revert).
type vmHook struct {
	url       string
	client    *http.Client
	mu        sync.Mutex
	snapshots map[string]bool
}

func (h *vmHook) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VcwaveVmHook", Value: "vm-hook"}
}

func (h *vmHook) PutObject(mo.Reference)                    {}
func (h *vmHook) RemoveObject(types.ManagedObjectReference) {}
func (h *vmHook) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok {
		return
	}
	tree := false
	for _, c := range changes {
		tree = tree || c.Name == "snapshot.rootSnapshotList"
	}
	for _, c := range changes {
		switch {
		case c.Name == "runtime.powerState": // already applied when handlers are called
			h.send(map[string]string{"vm": vm.Name, "power": string(vm.Runtime.PowerState)})
		case c.Name == "snapshot.currentSnapshot" && vm.Snapshot != nil && vm.Snapshot.CurrentSnapshot != nil:
			ref := vm.Snapshot.CurrentSnapshot.Value
			h.mu.Lock()
			known := h.snapshots[ref]
			h.snapshots[ref] = true
			h.mu.Unlock()
			if !known {
				h.send(map[string]string{"vm": vm.Name, "snapshot": ref, "event": "snapshot"})
			} else if !tree {
				h.send(map[string]string{"vm": vm.Name, "snapshot": ref, "event": "revert"})
			}
		}
	}
}

func (h *vmHook) send(change map[string]string) {
	body, _ := json.Marshal(change)
	res, err := h.client.Post(h.url, "application/json", bytes.NewReader(body))
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d", res.StatusCode)
		}
	}
	if err != nil {
		log.Printf("vcwave-vcsim: vm hook %v: %v", change, err)
	}
}

// newServer starts the HTTP server; govmomi panics when it cannot listen (e.g. port in use).
func newServer(svc *simulator.Service, fail func(string, ...interface{})) (server *simulator.Server) {
	defer func() {
		if r := recover(); r != nil {
			fail("listen: %v", r)
		}
	}()
	return svc.NewServer()
}

func dropOpaqueNetworks() {
	for _, e := range simulator.Map.All("Folder") {
		f := e.(*simulator.Folder)
		var keep []types.ManagedObjectReference
		for _, ref := range f.ChildEntity {
			if ref.Type == "OpaqueNetwork" {
				simulator.Map.Remove(ref)
				continue
			}
			keep = append(keep, ref)
		}
		f.ChildEntity = keep
	}
}

func setSSO(pscHost string) {
	values := map[string]string{
		"config.vpxd.sso.admin.uri":      "https://" + pscHost + "/sso-adminserver/sdk/vsphere.local",
		"config.vpxd.sso.sts.uri":        "https://" + pscHost + "/sts/STSService/vsphere.local",
		"config.vpxd.sso.groupcheck.uri": "https://" + pscHost + "/sso-adminserver/sdk/vsphere.local",
	}
	m := simulator.Map.OptionManager()
	for i := range m.Setting {
		o := m.Setting[i].GetOptionValue()
		if v, ok := values[o.Key]; ok {
			o.Value = v
			delete(values, o.Key)
		}
	}
	for _, k := range []string{"config.vpxd.sso.admin.uri", "config.vpxd.sso.sts.uri", "config.vpxd.sso.groupcheck.uri"} {
		if v, ok := values[k]; ok {
			m.Setting = append(m.Setting, &types.OptionValue{Key: k, Value: v})
		}
	}
}

// populate creates datastore LocalDS_0 on every host, then nvms VMs (DC0_H0_VM<i> on the standalone
// host, DC0_C0_RP0_VM<i> in the cluster, like simulator.Model names them), then the appliance VMs
// in the cluster's root pool; all powered on. Runs in process, before the server listens.
func populate(svc *simulator.Service, dsPath string, nvms int, appliances []string) error {
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, svc)
	if err != nil {
		return err
	}
	if err = os.MkdirAll(dsPath, 0o700); err != nil {
		return err
	}
	dc := simulator.Map.Any("Datacenter").(*simulator.Datacenter)
	var standalone, cluster types.ManagedObjectReference
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		cluster = *e.(*simulator.ClusterComputeResource).ResourcePool
	}
	hosts := simulator.Map.All("HostSystem")
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Entity().Name < hosts[j].Entity().Name })
	for _, h := range hosts {
		host := object.NewHostSystem(c, h.Reference())
		if h.Entity().Name == "DC0_H0" {
			pool, err := host.ResourcePool(ctx)
			if err != nil {
				return err
			}
			standalone = pool.Reference()
		}
		dss, err := host.ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return err
		}
		if _, err = dss.CreateLocalDatastore(ctx, "LocalDS_0", dsPath); err != nil {
			return fmt.Errorf("datastore on %s: %v", h.Entity().Name, err)
		}
	}

	folder := object.NewFolder(c, dc.VmFolder)
	create := func(name string, pool types.ManagedObjectReference, cpus int32, memMB int64) error {
		spec := types.VirtualMachineConfigSpec{
			Name:     name,
			GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherGuest),
			NumCPUs:  cpus,
			MemoryMB: memMB,
			Files:    &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
		}
		task, err := folder.CreateVM(ctx, spec, object.NewResourcePool(c, pool), nil)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("create %s: %v", name, err)
		}
		vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
		task, err = vm.PowerOn(ctx)
		if err != nil {
			return err
		}
		if err = task.Wait(ctx); err != nil {
			return fmt.Errorf("power on %s: %v", name, err)
		}
		return nil
	}

	first := (nvms + 1) / 2
	for i := 0; i < first; i++ {
		if err = create(fmt.Sprintf("DC0_H0_VM%d", i), standalone, 1, 32); err != nil {
			return err
		}
	}
	for i := 0; i < nvms-first; i++ {
		if err = create(fmt.Sprintf("DC0_C0_RP0_VM%d", i), cluster, 1, 32); err != nil {
			return err
		}
	}
	for _, name := range appliances {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if err = create(name, cluster, 2, 10240); err != nil {
			return err
		}
	}
	return nil
}
