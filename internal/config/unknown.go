package config

import (
	"flag"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unknownVariables returns one message per KUBE_ECR_REFRESHER_* variable in
// environ ("NAME=value" entries, as os.Environ returns) that names no
// setting, sorted by name, each with a hint when a setting is close.
func unknownVariables(ss []setting, environ []string) []string {
	known := make(map[string]bool, len(ss))
	for _, s := range ss {
		known[s.env()] = true
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix+"_") && !known[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var msgs []string
	for _, name := range names {
		msg := "unknown environment variable " + shown(name)
		if s, ok := closest(ss, strings.TrimPrefix(name, Prefix+"_")); ok {
			msg += " (did you mean " + s.env() + "?)"
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// closest returns the setting that name most likely meant: the same letters
// in another case, with '-' for '_' (a flag spelt as a variable or the other
// way round), with the prefix repeated, or else within two edits (typos).
// Ties go to the first setting in field order.
func closest(ss []setting, name string) (setting, bool) {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	n = strings.TrimPrefix(n, Prefix+"_")
	best, bestDist := setting{}, 3 // more than two edits is no hint
	for _, s := range ss {
		d := editDistance(n, s.key)
		// A short name is a few edits from many things: no hint for those.
		if d < bestDist && 2*d < len(s.key) {
			best, bestDist = s, d
		}
	}
	return best, bestDist < 3
}

// editDistance counts the insertions, deletions, substitutions and swaps of
// two adjacent bytes that turn a into b (optimal string alignment distance).
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// unknownFlags splits args into what fs defines, to be parsed, and one
// message per flag that fs does not define, sorted by name, each with a hint
// when a setting is close. flag.FlagSet.Parse stops at the first undefined
// flag; this walks args the way Parse does, so that every one is found:
// flags end at the first non-flag argument, at "--" and at bad flag syntax
// (all left to Parse); a defined flag other than a boolean given without
// "=value" takes the next argument as its value, whatever it looks like; -h
// and --help are left to Parse, which returns flag.ErrHelp. An undefined flag
// without "=value" takes the next argument as its value unless that looks
// like a flag: this program takes no positional arguments, so "--typo value"
// is reported as one unknown flag, not also as an unexpected argument.
func unknownFlags(fs *flag.FlagSet, ss []setting, args []string) (known []string, msgs []string) {
	var names []string
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			break
		}
		name := strings.TrimPrefix(a[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			break
		}
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		switch {
		case f == nil && (name == "h" || name == "help"):
			return append(known, args[i:]...), nil
		case f == nil:
			names = append(names, name)
			if !hasValue && i+1 < len(args) && !looksLikeFlag(args[i+1]) {
				i++
			}
		default:
			known = append(known, a)
			if !hasValue && !isBoolFlag(f) && i+1 < len(args) {
				i++
				known = append(known, args[i])
			}
		}
	}
	known = append(known, args[i:]...)

	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		msg := "unknown flag " + shown("--"+name)
		if s, ok := closest(ss, name); ok {
			msg += " (did you mean --" + s.flag() + "?)"
		}
		msgs = append(msgs, msg)
	}
	return known, msgs
}

// looksLikeFlag reports whether Parse would read arg as a flag or as "--".
func looksLikeFlag(arg string) bool {
	return len(arg) >= 2 && arg[0] == '-'
}

// isBoolFlag reports whether f is given as --flag for true, as Parse decides.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// shown returns s as a message shows a name or an argument the user gave:
// as it is, or quoted when it holds a newline, another character that is
// not printable or invalid UTF-8, so that every problem stays on its line.
func shown(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
