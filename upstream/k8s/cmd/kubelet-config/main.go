// Command kubelet-config prints the effective KubeletConfiguration of a config file as the
// upstream kubelet loads it (its own file loader: decoding, v1beta1 defaulting, relative paths
// resolved; then, as its loadConfigFile, the default evictionHard, merged in with
// mergeDefaultEvictionSettings), as YAML in v1beta1. The tests hold tinylet's `check-config` output to it.
//
//	kubelet-config FILE
//	kubelet-config --version
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	kubeletconfigv1beta1 "k8s.io/kubelet/config/v1beta1"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	"k8s.io/kubernetes/pkg/kubelet/eviction"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"
	"sigs.k8s.io/yaml"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubelet-config: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: kubelet-config FILE | --version")
	}
	if os.Args[1] == "--version" {
		v := "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Path == "k8s.io/kubernetes" {
					v = d.Version
				}
			}
		}
		fmt.Printf("kubelet-config (k8s.io/kubernetes %s)\n", v)
		return
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	internal, err := loader.Load(context.Background())
	if err != nil {
		fail("%v", err)
	}
	// cmd/kubelet/app/server.go's loadConfigFile.
	if internal.EvictionHard == nil {
		internal.EvictionHard = eviction.DefaultEvictionHard
	} else if internal.MergeDefaultEvictionSettings {
		for k, v := range eviction.DefaultEvictionHard {
			if _, exists := internal.EvictionHard[k]; !exists {
				internal.EvictionHard[k] = v
			}
		}
	}
	scheme, _, err := kubeletscheme.NewSchemeAndCodecs()
	if err != nil {
		fail("%v", err)
	}
	out := &kubeletconfigv1beta1.KubeletConfiguration{}
	if err := scheme.Convert(internal, out, nil); err != nil {
		fail("converting to v1beta1: %v", err)
	}
	out.APIVersion = kubeletconfigv1beta1.SchemeGroupVersion.String()
	out.Kind = "KubeletConfiguration"
	b, err := yaml.Marshal(out)
	if err != nil {
		fail("%v", err)
	}
	os.Stdout.Write(b)
}
