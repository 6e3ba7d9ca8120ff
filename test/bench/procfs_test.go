package main

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    statFields
		wantErr bool
	}{
		{
			name: "Fields are counted from the end of the command name",
			stat: "1234 (kube-apiserver) S 99 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 12 0 100 0 0",
			want: statFields{comm: "kube-apiserver", ppid: 99, cpu: 3 * time.Second},
		},
		{
			name: "A command name with spaces and parentheses does not shift the fields",
			stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 7 3 0 0",
			want: statFields{comm: "a (b) c", ppid: 1, cpu: 100 * time.Millisecond},
		},
		{name: "A truncated line is an error", stat: "7 (x) R 1 7", wantErr: true},
		{name: "A line without a command name is an error", stat: "7 x R 1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(statFields{})); diff != "" {
				t.Errorf("parseStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusBytes(t *testing.T) {
	status := "Name:\tbench\nVmPeak:\t  900 kB\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nRssFile:\t    512 kB\n"
	tests := []struct {
		name    string
		key     string
		want    int64
		wantErr bool
	}{
		{name: "VmHWM is read in bytes", key: "VmHWM", want: 2 << 20},
		{name: "VmRSS is read in bytes", key: "VmRSS", want: 1 << 20},
		{name: "RssFile is read in bytes", key: "RssFile", want: 512 << 10},
		{name: "A missing key is an error", key: "VmSwap", wantErr: true},
		{name: "A line without a kB unit is an error", key: "Name", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statusBytes([]byte(status), tt.key)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("statusBytes(%s) = %d, %v; want %d, error %v", tt.key, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadProcStatsOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	st, err := readProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS <= 0 || st.RSS <= 0 || st.PeakRSS < st.RSS || st.RSSFile <= 0 || st.RSSFile > st.RSS {
		t.Errorf("readProcStats = %+v, want 0 < RSSFile <= RSS <= PeakRSS", st)
	}
}
