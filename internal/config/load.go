package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// programName is the binary's name, shown in the --help text.
const programName = "kube-ecr-refresher"

// Load reads the settings from the process environment and from args (the
// command line without the program name, os.Args[1:]); a flag that is set wins
// over its variable. It returns the normalized, validated Config, or every
// problem found at once, one line each: unknown KUBE_ECR_REFRESHER_*
// variables, then unknown flags (each sorted by name), then other command-line
// errors, then bad values in field order.
//
// With -h or --help among the flags it writes the usage to stderr and returns
// flag.ErrHelp itself, whatever else is wrong, so callers can test
// errors.Is(err, flag.ErrHelp) and exit 0.
func Load(args []string, stderr io.Writer) (Config, error) {
	ss := settings()

	// Problems that are not about one setting's value, in this order:
	// unknown variables, unknown flags, what else Parse rejects.
	var errs []error
	for _, msg := range unknownVariables(ss, os.Environ()) {
		errs = append(errs, errors.New(msg))
	}
	fs, flags := newFlagSet(ss)
	args, unknown := unknownFlags(fs, ss, args)
	for _, msg := range unknown {
		errs = append(errs, errors.New(msg))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if stderr != nil {
				writeUsage(stderr, ss)
			}
			return Config{}, flag.ErrHelp
		}
		// The flags before the bad one are set; the values are still checked.
		// The message may hold an argument as given ("bad flag syntax: ARG").
		errs = append(errs, errors.New("parse flags: "+shown(err.Error())))
	} else if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}

	env, err := readEnv(ss)
	if err != nil {
		return Config{}, errors.Join(append(errs, fmt.Errorf("read environment: %w", err))...)
	}

	var cfg Config
	var problems []*fieldError
	v := reflect.ValueOf(&cfg).Elem()
	failed := make(map[string]bool)
	for i, s := range ss {
		raw := env[i]
		if flags[i].set {
			raw = &flags[i].value
		}
		if raw == nil {
			continue // unset and no default: the zero value
		}
		val, err := parseValue(s.typ, *raw)
		if err != nil {
			problems = append(problems, &fieldError{key: s.key, msg: err.Error()})
			failed[s.key] = true
			continue
		}
		v.Field(s.index).Set(val)
	}
	cfg.normalize()
	cfg.resolve(podEnv{})
	for _, p := range cfg.problems() {
		if !p.involves(failed) {
			problems = append(problems, p)
		}
	}

	// One list in field order, parse and semantic problems mixed.
	order := make(map[string]int, len(ss))
	for i, s := range ss {
		order[s.key] = i
	}
	slices.SortStableFunc(problems, func(a, b *fieldError) int { return order[a.key] - order[b.key] })
	for _, p := range problems {
		errs = append(errs, p)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	// Valid by now: parsed once, here, for the rest to use as it is.
	if cfg.RegistryList, err = ParseRegistries(cfg.Registries); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// EnvName returns the environment variable of the setting whose envconfig tag
// is envKey: EnvName("RETRY_MAX") == "KUBE_ECR_REFRESHER_RETRY_MAX".
func EnvName(envKey string) string {
	return Prefix + "_" + envKey
}

// FlagName returns the flag name, without dashes, of the setting whose
// envconfig tag is envKey: FlagName("KUBE_API_QPS") == "kube-api-qps".
func FlagName(envKey string) string {
	return strings.ToLower(strings.ReplaceAll(envKey, "_", "-"))
}

// setting is one field of Config as its struct tags describe it.
type setting struct {
	index int          // field index in Config
	name  string       // Go field name
	key   string       // envconfig tag, e.g. TARGET_NAMESPACES
	def   string       // default tag; "" for none
	desc  string       // desc tag
	typ   reflect.Type // field type
}

func (s setting) env() string  { return EnvName(s.key) }
func (s setting) flag() string { return FlagName(s.key) }

// settings lists Config's fields the way envconfig sees them: exported, not
// `ignored:"true"`, keyed by the upper-cased envconfig tag or else the field name.
func settings() []setting {
	t := reflect.TypeFor[Config]()
	ss := make([]setting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if ignored, _ := strconv.ParseBool(f.Tag.Get("ignored")); !f.IsExported() || ignored {
			continue
		}
		key := f.Tag.Get("envconfig")
		if key == "" {
			key = f.Name
		}
		ss = append(ss, setting{
			index: i,
			name:  f.Name,
			key:   strings.ToUpper(key),
			def:   f.Tag.Get("default"),
			desc:  f.Tag.Get("desc"),
			typ:   f.Type,
		})
	}
	return ss
}

// readEnv reads each setting's variable with envconfig, default applied. It
// hands envconfig a mirror of Config whose fields are all *string: strings
// cannot fail to parse, so envconfig.Process reads every variable, and a nil
// pointer means "unset, no default" while a pointer to "" means "set to empty".
// The mirror's tags hold the full prefixed name and Process gets no prefix,
// which turns off envconfig's fallback to the unprefixed tag name.
func readEnv(ss []setting) ([]*string, error) {
	fields := make([]reflect.StructField, len(ss))
	for i, s := range ss {
		tag := fmt.Sprintf("envconfig:%q", s.env())
		if s.def != "" {
			tag += fmt.Sprintf(" default:%q", s.def)
		}
		fields[i] = reflect.StructField{
			Name: s.name,
			Type: reflect.TypeFor[*string](),
			Tag:  reflect.StructTag(tag),
		}
	}
	mirror := reflect.New(reflect.StructOf(fields))
	if err := envconfig.Process("", mirror.Interface()); err != nil {
		return nil, err
	}
	raw := make([]*string, len(ss))
	for i := range ss {
		raw[i] = mirror.Elem().Field(i).Interface().(*string)
	}
	return raw, nil
}

// rawFlag is a flag.Value that keeps the string it is given; parsing happens
// later, with the variables, so that every bad value is reported.
type rawFlag struct {
	value   string
	set     bool
	boolean bool
}

func (f *rawFlag) String() string {
	if f == nil {
		return ""
	}
	return f.value
}

func (f *rawFlag) Set(s string) error {
	f.value, f.set = s, true
	return nil
}

// IsBoolFlag lets a bool setting be given as --flag (true) or --flag=false.
func (f *rawFlag) IsBoolFlag() bool { return f.boolean }

// newFlagSet defines one flag per setting. It prints nothing: Load writes the
// usage on --help and returns every other error.
func newFlagSet(ss []setting) (*flag.FlagSet, []*rawFlag) {
	fs := flag.NewFlagSet(programName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flags := make([]*rawFlag, len(ss))
	for i, s := range ss {
		flags[i] = &rawFlag{value: s.def, boolean: s.typ.Kind() == reflect.Bool}
		fs.Var(flags[i], s.flag(), s.desc)
	}
	return fs, flags
}

// parseValue converts raw into a value of type t.
func parseValue(t reflect.Type, raw string) (reflect.Value, error) {
	switch t {
	case reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(raw)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("invalid duration %q (want a number with a unit: 30s, 5m, 1h)", raw)
		}
		return reflect.ValueOf(d), nil
	case reflect.TypeFor[[]string]():
		return reflect.ValueOf(splitList(raw)), nil
	}
	switch t.Kind() {
	case reflect.String:
		return reflect.ValueOf(raw).Convert(t), nil
	case reflect.Int:
		n, err := strconv.ParseInt(raw, 0, strconv.IntSize)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("invalid integer %q", raw)
		}
		return reflect.ValueOf(int(n)).Convert(t), nil
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("invalid number %q", raw)
		}
		return reflect.ValueOf(f).Convert(t), nil
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("invalid boolean %q (want true or false)", raw)
		}
		return reflect.ValueOf(b).Convert(t), nil
	}
	return reflect.Value{}, fmt.Errorf("unsupported setting type %s", t)
}

// splitList splits a comma-separated list and trims its entries. Duplicates
// are dropped, first occurrence kept; empty entries are kept, once, for
// Validate to reject. A blank string is the empty list.
func splitList(raw string) []string {
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	var list []string
	seen := make(map[string]bool)
	for _, e := range strings.Split(raw, ",") {
		e = strings.TrimSpace(e)
		if !seen[e] {
			seen[e] = true
			list = append(list, e)
		}
	}
	return list
}

// normalize lower-cases the settings that are matched case-insensitively.
// inClusterNamespaceFile holds the Pod's namespace in a cluster.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// environment is what resolve reads beside the settings; tests replace it.
type environment interface {
	Getenv(key string) string
	ReadFile(name string) ([]byte, error)
	Hostname() (string, error)
}

// podEnv is the process's own environment.
type podEnv struct{}

func (podEnv) Getenv(key string) string             { return os.Getenv(key) }
func (podEnv) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
func (podEnv) Hostname() (string, error)            { return os.Hostname() }

// resolve fills what the settings leave to the environment: the Pod's name
// and namespace (downward API), the leader election identity (POD_NAME, else
// the hostname with a random suffix, so two processes on one host differ)
// and the Lease namespace (POD_NAMESPACE, else the in-cluster namespace
// file, else "default").
func (c *Config) resolve(env environment) {
	c.PodName = env.Getenv("POD_NAME")
	c.PodNamespace = env.Getenv("POD_NAMESPACE")
	if c.Identity == "" {
		c.Identity = c.PodName
	}
	if c.Identity == "" {
		host, err := env.Hostname()
		if err != nil || host == "" {
			host = programName
		}
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Identity = host + "_" + hex.EncodeToString(b)
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = c.PodNamespace
	}
	if c.LeaseNamespace == "" {
		if b, err := env.ReadFile(inClusterNamespaceFile); err == nil {
			c.LeaseNamespace = strings.TrimSpace(string(b))
		}
	}
	if c.LeaseNamespace == "" {
		c.LeaseNamespace = "default"
	}
}

func (c *Config) normalize() {
	c.LogLevel = strings.ToLower(c.LogLevel)
	c.LogFormat = strings.ToLower(c.LogFormat)
}

// writeUsage writes the --help text: every flag with its variable, type,
// description and default.
func writeUsage(w io.Writer, ss []setting) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [flags]\n\n", programName)
	b.WriteString("Every flag can also be set with the environment variable shown next to it;\n" +
		"a flag that is set wins over its variable. Lists are comma-separated;\n" +
		"booleans are given as --flag or --flag=false.\n\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "  --%s", s.flag())
		if s.typ.Kind() != reflect.Bool {
			fmt.Fprintf(&b, " %s", typeName(s.typ))
		}
		fmt.Fprintf(&b, "  (%s)\n        %s", s.env(), s.desc)
		switch k := s.typ.Kind(); {
		case s.def == "":
		case k == reflect.String || k == reflect.Slice:
			fmt.Fprintf(&b, " (default %q)", s.def)
		default:
			fmt.Fprintf(&b, " (default %s)", s.def)
		}
		b.WriteString("\n")
	}
	io.WriteString(w, b.String())
}

// typeName names a setting's type in the --help text.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "duration"
	case reflect.TypeFor[[]string]():
		return "list"
	}
	switch t.Kind() {
	case reflect.Int:
		return "int"
	case reflect.Float64:
		return "float"
	}
	return t.String()
}
