package nanochat4j.model.engine;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.util.Locale;

/**
 * The calculator tool the model calls between {@code <|python_start|>} and {@code <|python_end|>}, with nanochat's
 * rules (engine.py {@code use_calculator}) but without running Python: a small parser that evaluates exactly
 * what nanochat allows and nothing else.
 * <ul>
 *   <li>Commas are removed. Text made only of {@code 0-9 * + - / . ( )} and spaces is Python arithmetic: exact
 *       integers, floats, {@code + - * / //}, unary signs, parentheses; {@code **} is refused (so {@code 9**9**9}
 *       cannot explode). Results print as Python's {@code str()} does ({@code 12/60 → 0.2}, {@code 0.2*50 → 10.0}).</li>
 *   <li>Otherwise only {@code 'text'.count('t')} is allowed (letters, digits, quotes, parentheses, '.', '_' and
 *       spaces; no dunder or builtin names), giving Python's non-overlapping substring count.</li>
 *   <li>No reflection, no scripting engine, no I/O; work is bounded by the (capped) input length. Anything else
 *       is an error whose text goes into the output block, never an exception.</li>
 * </ul>
 */
public final class Calculator {
    private Calculator() {}

    /** Longest expression accepted; bounds the work (no '**' means results have at most as many digits as the input). */
    static final int MAX_CHARS = 1000;
    /** CPython's parser refuses deeper nesting ("too many nested parentheses"). */
    private static final int MAX_DEPTH = 200;
    private static final String[] FORBIDDEN = {"__", "import", "exec", "eval", "compile", "open", "file", "input",
            "raw_input", "globals", "locals", "vars", "dir", "getattr", "setattr", "delattr", "hasattr"};

    /** A calculator answer: {@code text} is the result, or an error message when {@code ok} is false. */
    public record Result(boolean ok, String text) {
        static Result error(String message) {
            return new Result(false, "Error: " + message);
        }
    }

    public static Result evaluate(String expression) {
        if (expression.length() > MAX_CHARS) return Result.error("expression longer than " + MAX_CHARS + " characters");
        String expr = expression.replace(",", "");
        try {
            if (expr.chars().allMatch(c -> "0123456789*+-/.() ".indexOf(c) >= 0)) {
                if (expr.contains("**")) return Result.error("power operator not allowed");
                Parser p = new Parser(expr);
                Object v = p.parseAll();
                return new Result(true, str(v));
            }
            return new Result(true, Long.toString(count(expr)));
        } catch (CalcException e) {
            return Result.error(e.getMessage());
        }
    }

    private static final class CalcException extends Exception {
        CalcException(String message) {
            super(message, null, false, false);
        }
    }

    // ------------------------------------------------------------------ the '.count(' form

    private static long count(String expr) throws CalcException {
        for (int i = 0; i < expr.length(); i++) {
            char c = expr.charAt(i);
            boolean ok = (c < 128 && Character.isLetterOrDigit(c)) || "'\"()._ ".indexOf(c) >= 0;
            if (!ok) throw new CalcException("unsupported character '" + c + "'");
        }
        String lower = expr.toLowerCase(Locale.ROOT);
        for (String f : FORBIDDEN) if (lower.contains(f)) throw new CalcException("'" + f + "' is not allowed");
        if (!expr.contains(".count(")) throw new CalcException("only arithmetic and 'text'.count('t') are supported");
        // Grammar: '(' * STRING '.count(' STRING ')' ')' *   with optional spaces.
        String s = expr.strip();
        int open = 0;
        while (s.startsWith("(") && s.endsWith(")")) {
            s = s.substring(1, s.length() - 1).strip();
            if (++open > MAX_DEPTH) throw new CalcException("too many nested parentheses");
        }
        int[] pos = {0};
        String haystack = stringLiteral(s, pos);
        String rest = s.substring(pos[0]).stripLeading();
        if (!rest.startsWith(".count(")) throw new CalcException("expected .count( after the string");
        rest = rest.substring(".count(".length()).strip();
        if (!rest.endsWith(")")) throw new CalcException("missing ) after count's argument");
        rest = rest.substring(0, rest.length() - 1).strip();
        pos[0] = 0;
        String needle = stringLiteral(rest, pos);
        if (pos[0] != rest.length()) throw new CalcException("count takes one string argument");
        return pyCount(haystack, needle);
    }

    private static String stringLiteral(String s, int[] pos) throws CalcException {
        int i = pos[0];
        while (i < s.length() && s.charAt(i) == ' ') i++;
        if (i >= s.length() || (s.charAt(i) != '\'' && s.charAt(i) != '"')) throw new CalcException("expected a quoted string");
        char q = s.charAt(i);
        int end = s.indexOf(q, i + 1);
        if (end < 0) throw new CalcException("unterminated string");
        pos[0] = end + 1;
        return s.substring(i + 1, end);
    }

    /** Python str.count: non-overlapping occurrences; the empty needle counts len+1 positions. */
    static long pyCount(String haystack, String needle) {
        int n = haystack.codePointCount(0, haystack.length());
        if (needle.isEmpty()) return n + 1L;
        long c = 0;
        for (int i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length())) c++;
        return c;
    }

    // ------------------------------------------------------------------ arithmetic (values: BigInteger or Double)

    /** Recursive descent over Python's arithmetic grammar: expr := term (('+'|'-') term)*, term := factor (('*'|'/'|'//') factor)*, factor := ('+'|'-') factor | atom. */
    private static final class Parser {
        private final String s;
        private int i;
        private int depth;

        Parser(String s) {
            this.s = s;
        }

        Object parseAll() throws CalcException {
            Object v = expr();
            skip();
            if (i != s.length()) throw new CalcException("invalid syntax at position " + i);
            return v;
        }

        private void skip() {
            while (i < s.length() && s.charAt(i) == ' ') i++;
        }

        private Object expr() throws CalcException {
            Object v = term();
            while (true) {
                skip();
                if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
                    char op = s.charAt(i++);
                    Object r = term();
                    v = op == '+' ? add(v, r) : sub(v, r);
                } else {
                    return v;
                }
            }
        }

        private Object term() throws CalcException {
            Object v = factor();
            while (true) {
                skip();
                if (s.startsWith("//", i)) {
                    i += 2;
                    v = floorDiv(v, factor());
                } else if (i < s.length() && s.charAt(i) == '*') {
                    i++;
                    v = mul(v, factor());
                } else if (i < s.length() && s.charAt(i) == '/') {
                    i++;
                    v = trueDiv(v, factor());
                } else {
                    return v;
                }
            }
        }

        private Object factor() throws CalcException {
            skip();
            if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) {
                char op = s.charAt(i++);
                if (++depth > MAX_DEPTH) throw new CalcException("expression nested too deeply");
                Object v = factor();
                depth--;
                return op == '+' ? v : neg(v);
            }
            return atom();
        }

        private Object atom() throws CalcException {
            skip();
            if (i >= s.length()) throw new CalcException("unexpected end of expression");
            char c = s.charAt(i);
            if (c == '(') {
                i++;
                if (++depth > MAX_DEPTH) throw new CalcException("too many nested parentheses");
                Object v = expr();
                depth--;
                skip();
                if (i >= s.length() || s.charAt(i) != ')') throw new CalcException("missing closing parenthesis");
                i++;
                return v;
            }
            int start = i;
            while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
            boolean isFloat = false;
            if (i < s.length() && s.charAt(i) == '.') {
                isFloat = true;
                i++;
                while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
            }
            String lit = s.substring(start, i);
            if (lit.isEmpty() || lit.equals(".")) throw new CalcException("invalid syntax at position " + start);
            if (i < s.length() && (Character.isDigit(s.charAt(i)) || s.charAt(i) == '.')) {
                throw new CalcException("invalid number literal at position " + start);
            }
            if (isFloat) return Double.parseDouble(lit);
            if (lit.length() > 1 && lit.charAt(0) == '0' && !lit.chars().allMatch(ch -> ch == '0')) {
                throw new CalcException("leading zeros in decimal integer literals are not permitted");
            }
            return new BigInteger(lit);
        }
    }

    private static double asDouble(Object v) throws CalcException {
        if (v instanceof Double d) return d;
        double d = ((BigInteger) v).doubleValue();
        if (Double.isInfinite(d)) throw new CalcException("int too large to convert to float");
        return d;
    }

    private static Object add(Object a, Object b) throws CalcException {
        if (a instanceof BigInteger x && b instanceof BigInteger y) return x.add(y);
        return asDouble(a) + asDouble(b);
    }

    private static Object sub(Object a, Object b) throws CalcException {
        if (a instanceof BigInteger x && b instanceof BigInteger y) return x.subtract(y);
        return asDouble(a) - asDouble(b);
    }

    private static Object mul(Object a, Object b) throws CalcException {
        if (a instanceof BigInteger x && b instanceof BigInteger y) return x.multiply(y);
        return asDouble(a) * asDouble(b);
    }

    private static Object neg(Object a) {
        return a instanceof BigInteger x ? x.negate() : -(Double) a;
    }

    /** Python's true division: int/int is correctly rounded even for huge ints. */
    private static Object trueDiv(Object a, Object b) throws CalcException {
        if (a instanceof BigInteger x && b instanceof BigInteger y) {
            if (y.signum() == 0) throw new CalcException("division by zero");
            if (x.bitLength() <= 53 && y.bitLength() <= 53) return x.doubleValue() / y.doubleValue();
            double d = new BigDecimal(x).divide(new BigDecimal(y), MathContext.DECIMAL128).doubleValue();
            if (Double.isInfinite(d)) throw new CalcException("integer division result too large for a float");
            return d;
        }
        double y = asDouble(b);
        if (y == 0.0) throw new CalcException("float division by zero");
        return asDouble(a) / y;
    }

    /** Python's floor division: ints floor exactly; floats follow CPython's float_divmod. */
    private static Object floorDiv(Object a, Object b) throws CalcException {
        if (a instanceof BigInteger x && b instanceof BigInteger y) {
            if (y.signum() == 0) throw new CalcException("integer division or modulo by zero");
            BigInteger[] qr = x.divideAndRemainder(y);
            return qr[1].signum() != 0 && (qr[1].signum() != y.signum()) ? qr[0].subtract(BigInteger.ONE) : qr[0];
        }
        double vx = asDouble(a);
        double wx = asDouble(b);
        if (wx == 0.0) throw new CalcException("float floor division by zero");
        double mod = vx % wx; // C fmod
        double div = (vx - mod) / wx;
        if (mod != 0.0) {
            if ((wx < 0) != (mod < 0)) div -= 1.0;
        }
        if (div != 0.0) {
            double floordiv = Math.floor(div);
            if (div - floordiv > 0.5) floordiv += 1.0;
            return floordiv;
        }
        return Math.copySign(0.0, vx / wx);
    }

    /** Python's str() of an int or a float (repr: shortest round-trip digits, exponent outside [1e-4, 1e16)). */
    static String str(Object v) {
        if (v instanceof BigInteger x) return x.toString();
        double d = (Double) v;
        if (Double.isNaN(d)) return "nan";
        if (Double.isInfinite(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0.0) return (1.0 / d < 0) ? "-0.0" : "0.0";
        // Java's Double.toString gives the shortest round-trip digits (JDK 19+); only the layout differs from Python.
        BigDecimal bd = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int exp = digits.length() - 1 - bd.scale(); // d = digits[0].digits[1..] × 10^exp
        String sign = d < 0 ? "-" : "";
        if (exp >= -5 + 1 && exp < 16) {
            String plain = bd.toPlainString();
            return sign + (plain.contains(".") ? plain : plain + ".0");
        }
        String mant = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        String e = String.format(Locale.ROOT, "%02d", Math.abs(exp));
        return sign + mant + "e" + (exp < 0 ? "-" : "+") + e;
    }
}
