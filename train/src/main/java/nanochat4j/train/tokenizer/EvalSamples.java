package nanochat4j.train.tokenizer;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Fixed sample texts for tok-eval, one per kind nanochat's tok_eval measures (news, Korean, code, math, science).
 * Written for this project (nanochat's own samples are copied web text), with the same mix of features: curly
 * quotes and dates, Hangul, indented code, LaTeX, sub/superscripts.
 */
public final class EvalSamples {
    private EvalSamples() {}

    static final String NEWS = """
            (Springfield, March 4, 2026) – The city council voted 7–2 on Tuesday to fund a $48.5 million upgrade of \
            the water treatment plant on Riverside Drive, ending a debate that began in 2023. “We can’t keep patching a \
            system built in 1961,” said council member Dana Ortiz, who chairs the infrastructure committee. The plan \
            replaces two filtration basins, adds UV disinfection and is expected to cut boil-water notices, which \
            reached 11 last year, to near zero.

            Opponents argued the project should wait for a federal grant decision due in the fall. Construction is \
            scheduled to start in June and finish by late 2028; residents will see an average increase of $3.20 per \
            month on their bills starting in January.""";

    static final String KOREAN = """
            오늘 아침 서울의 기온은 영하 3도까지 내려갔습니다. 기상청은 이번 주말까지 추운 날씨가 이어질 것으로 예보했습니다.
            시민들은 두꺼운 외투를 입고 출근길에 나섰고, 일부 지역에서는 눈이 내리기도 했습니다.

            전문가들은 “갑작스러운 기온 변화에 건강 관리에 유의해야 한다”고 조언했습니다.
            특히 어린이와 노약자는 외출을 자제하고 실내 온도를 적절하게 유지하는 것이 좋습니다.""";

    static final String CODE = """
            public final class Histogram {
                private final long[] counts;
                private final double lo, hi;

                public Histogram(int bins, double lo, double hi) {
                    if (bins <= 0) throw new IllegalArgumentException("bins must be > 0, got " + bins);
                    this.counts = new long[bins];
                    this.lo = lo;
                    this.hi = hi;
                }

                /** Adds x to its bin; values outside [lo, hi) go to the first or last bin. */
                public void add(double x) {
                    int b = (int) Math.floor((x - lo) / (hi - lo) * counts.length);
                    counts[Math.max(0, Math.min(counts.length - 1, b))]++;
                }

                public double mean() {
                    double sum = 0, n = 0;
                    for (int i = 0; i < counts.length; i++) {
                        double mid = lo + (i + 0.5) * (hi - lo) / counts.length;
                        sum += mid * counts[i];
                        n += counts[i];
                    }
                    return n == 0 ? Double.NaN : sum / n;
                }
            }""";

    static final String MATH = """
            \\begin{theorem}
            For every integer $n \\ge 1$, $\\sum_{k=1}^{n} (2k-1) = n^2$.
            \\end{theorem}

            \\begin{proof}
            For $n=1$ both sides equal $1$. Assume $\\sum_{k=1}^{n} (2k-1) = n^2$ for some $n \\ge 1$. Then
            \\[
            \\sum_{k=1}^{n+1} (2k-1) = n^2 + (2(n+1)-1) = n^2 + 2n + 1 = (n+1)^2,
            \\]
            so the claim holds for $n+1$, and by induction for all $n \\ge 1$.
            \\end{proof}

            \\noindent Geometrically: adding the odd number $2n+1$ to an $n \\times n$ square of dots gives an $(n+1) \\times (n+1)$ square.""";

    static final String SCIENCE = """
            In aerobic respiration, glucose (C₆H₁₂O₆) is oxidized to CO₂ while O₂ is reduced to H₂O, and the free \
            energy released is captured as ATP. Glycolysis in the cytosol yields pyruvate, 2 ATP and 2 NADH per \
            glucose; pyruvate enters the mitochondrial matrix, where the pyruvate dehydrogenase complex forms \
            acetyl-CoA that feeds the citric acid cycle. Electrons carried by NADH and FADH₂ flow through complexes \
            I–IV of the inner membrane, pumping H⁺ into the intermembrane space; ATP synthase uses the resulting \
            proton-motive force (Δp ≈ 180–200 mV) to phosphorylate ADP, for a total of roughly 30–32 ATP per glucose.""";

    public static Map<String, String> all() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("news", NEWS);
        m.put("korean", KOREAN);
        m.put("code", CODE);
        m.put("math", MATH);
        m.put("science", SCIENCE);
        return m;
    }
}
