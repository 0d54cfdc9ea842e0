"""Shared by the test files: expect_error, and the script mode used when pytest is not
installed (main: runs every test_* function of a module's globals, prints one line per test
and exits non-zero if any failed)."""
import sys


def main(namespace):
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for n, f in tests:
        try:
            f()
            print("ok     %s" % n)
        except Exception as e:
            failed += 1
            print("FAILED %s: %s: %s" % (n, type(e).__name__, e))
    print("%d of %d tests passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)


def expect_error(fn, words):
    """fn() must raise jade.JadeError whose message contains words."""
    import jade
    try:
        fn()
    except jade.JadeError as e:
        assert words in str(e), "message %r lacks %r" % (str(e), words)
        return
    raise AssertionError("no JadeError (expected %r)" % words)
