package pipeline

import "testing"

// FuzzPlainHost checks that the fast path agrees with url.Parse wherever
// it answers.
func FuzzPlainHost(f *testing.F) {
	for _, ref := range []string{
		"https://www.google.com/search?q=x", "http://news.example.org", "t.co/abc", "https://a.com#x",
		"https://a.com:8080/", "HTTPS://A.COM/", "https://user@a.com/", "https://a.com/%zz", "https://a.com/ a",
		"ftp://a.com/", "//a.com/x", "/path", "a..b", "https://-a-.com?", "https://a.com/\x7f", "",
	} {
		f.Add(ref)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if h, ok := plainHost(ref); ok {
			if want := parsedHost(ref); h != want {
				t.Fatalf("plainHost(%q) = %q, url.Parse gives %q", ref, h, want)
			}
		}
	})
}
