// The function's process for Figure 5's JVM benchmarks, written here from the artifact's
// description (rssys/pronghorn-artifact benchmarks/java: input sizes Gaussian around the middle of
// [min, max] with spread sqrt(mutability) x scale, clipped; RNG seeded 42 once per process). It speaks
// the Python runtime's control protocol (runtime.py): it connects back to the host's control port,
// says hello, then answers newline-delimited JSON commands; only `invoke` (a JVM cannot be forked,
// so its snapshots are CRIU images the host takes). With --reconnect-file, a process whose control
// connection was closed (restored by `criu restore --tcp-close`) reconnects once per new token.
// Compiled by install.sh --jvm (javac, JDK 11+).

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class PronghornRuntime {
    static final Random RNG = new Random(42);
    static final Pattern MUTABILITY = Pattern.compile("\"mutability\"\\s*:\\s*([0-9.eE+-]+)");
    static final Pattern OP = Pattern.compile("\"op\"\\s*:\\s*\"([a-z]+)\"");
    static String[] words;

    static double workload(double mutability, double min, double max, double scale) {
        double x = RNG.nextGaussian() * (Math.sqrt(Math.max(mutability, 0)) * scale) + (min + max) / 2;
        return Math.max(min, Math.min(max, x));
    }

    // matrix-multiplication: two random int matrices of dimension 10..50 (scale 2), row x column.
    static String matrixMultiplication(double m) {
        int n = (int) Math.round(workload(m, 10, 50, 2));
        int[][] a = new int[n][n];
        int[][] b = new int[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                a[i][j] = RNG.nextInt(201) - 100;
                b[i][j] = RNG.nextInt(201) - 100;
            }
        }
        long trace = 0;
        int[][] c = new int[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                int s = 0;
                for (int k = 0; k < n; k++) {
                    s += a[i][k] * b[k][j];
                }
                c[i][j] = s;
            }
            trace += c[i][i];
        }
        return "{\"dimension\":" + n + ",\"trace\":" + trace + "}";
    }

    // simple-hash: 50..500 KiB (scale 75) of random bytes through a 31-multiplier hash, 4 rounds a byte.
    static String simpleHash(double m) {
        byte[] data = new byte[1024 * (int) workload(m, 50, 500, 75)];
        RNG.nextBytes(data);
        int h = 7;
        for (byte x : data) {
            h = h * 31 + x;
            h = h * 31 + x;
            h = h * 31 + x;
            h = h * 31 + x;
        }
        return "{\"bytes\":" + data.length + ",\"hash\":" + h + "}";
    }

    // word-count: the first 5000..15000 (scale 750) lines of a generated text, counted letter by letter.
    static String wordCount(double m) {
        int lines = (int) workload(m, 5000, 15000, 750);
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < lines; i++) {
            text.append(words[i % words.length]).append(i % 7 == 0 ? ".\n" : " ");
        }
        char[] cs = text.toString().toCharArray();
        int count = 0;
        boolean inWord = false;
        for (char c : cs) {
            if (Character.isLetter(c)) {
                inWord = true;
            } else if (inWord) {
                count++;
                inWord = false;
            }
        }
        if (inWord) {
            count++;
        }
        return "{\"lines\":" + lines + ",\"words\":" + count + "}";
    }

    // html-rendering: a product list of 100..500 items (scale 25), each with two features, through a
    // template compiled on every request (as the artifact compiles its mustache template per request).
    static final String TEMPLATE = "<html><body><h1>Items</h1><ul>{{#items}}<li><b>{{name}}</b> {{price}}<ul>"
            + "{{#features}}<li>{{description}}</li>{{/features}}</ul></li>{{/items}}</ul></body></html>";

    static String htmlRendering(double m) {
        int n = (int) workload(m, 100, 500, 25);
        List<Map<String, Object>> items = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Map<String, Object> item = new HashMap<>();
            item.put("name", "Item " + i);
            item.put("price", "$" + i + "." + i);
            List<Map<String, Object>> features = new ArrayList<>();
            for (String d : new String[] {"New! #" + i, "Awesome! #" + i}) {
                Map<String, Object> f = new HashMap<>();
                f.put("description", d);
                features.add(f);
            }
            item.put("features", features);
            items.add(item);
        }
        Map<String, Object> root = new HashMap<>();
        root.put("items", items);
        String html = render(compile(TEMPLATE), root);
        return "{\"items\":" + n + ",\"html_bytes\":" + html.length() + "}";
    }

    // A tiny mustache-like template: text, {{name}} and {{#list}}...{{/list}} nodes.
    static List<Object[]> compile(String t) {
        List<Object[]> out = new ArrayList<>();
        int i = 0;
        while (i < t.length()) {
            int open = t.indexOf("{{", i);
            if (open < 0) {
                out.add(new Object[] {"text", t.substring(i)});
                break;
            }
            if (open > i) {
                out.add(new Object[] {"text", t.substring(i, open)});
            }
            int close = t.indexOf("}}", open);
            String tag = t.substring(open + 2, close);
            if (tag.startsWith("#")) {
                String name = tag.substring(1);
                String end = "{{/" + name + "}}";
                int endAt = t.indexOf(end, close);
                out.add(new Object[] {"section", name, compile(t.substring(close + 2, endAt))});
                i = endAt + end.length();
            } else {
                out.add(new Object[] {"var", tag});
                i = close + 2;
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    static String render(List<Object[]> nodes, Map<String, Object> ctx) {
        StringBuilder sb = new StringBuilder();
        for (Object[] node : nodes) {
            switch ((String) node[0]) {
                case "text":
                    sb.append((String) node[1]);
                    break;
                case "var":
                    sb.append(String.valueOf(ctx.get((String) node[1])).replace("&", "&amp;").replace("<", "&lt;"));
                    break;
                default:
                    for (Map<String, Object> child : (List<Map<String, Object>>) ctx.get((String) node[1])) {
                        sb.append(render((List<Object[]>) node[2], child));
                    }
            }
        }
        return sb.toString();
    }

    static String run(String benchmark, double m) {
        switch (benchmark) {
            case "matrix-multiplication":
                return matrixMultiplication(m);
            case "simple-hash":
                return simpleHash(m);
            case "word-count":
                return wordCount(m);
            case "html-rendering":
                return htmlRendering(m);
            default:
                throw new IllegalArgumentException("unknown benchmark " + benchmark);
        }
    }

    static final class Channel {
        final Socket sock;
        final BufferedReader in;
        final OutputStream out;

        Channel(int port, String hello) throws IOException {
            sock = new Socket("127.0.0.1", port);
            sock.setTcpNoDelay(true);
            in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            out = sock.getOutputStream();
            send(hello);
        }

        void send(String line) throws IOException {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
        }
    }

    static String hello(String token, int served, boolean restored) {
        long pid = ProcessHandle.current().pid();
        return "{\"role\":\"instance\",\"token\":\"" + token + "\",\"pid\":" + pid + ",\"served\":" + served
                + (restored ? ",\"restored\":true" : "") + "}";
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        String benchmark = a.get("--benchmark");
        int port = Integer.parseInt(a.get("--control-port"));
        String reconnectFile = a.get("--reconnect-file");
        if (!Set.of("matrix-multiplication", "simple-hash", "word-count", "html-rendering").contains(benchmark)) {
            System.err.println("unknown benchmark " + benchmark);
            System.exit(2);
        }
        words = new String[2000];
        Random wr = new Random(7);
        for (int i = 0; i < words.length; i++) {
            char[] w = new char[3 + wr.nextInt(8)];
            for (int j = 0; j < w.length; j++) {
                w[j] = (char) ('a' + wr.nextInt(26));
            }
            words[i] = new String(w);
        }
        Set<String> used = new HashSet<>();
        used.add(a.get("--token"));
        int served = 0;
        Channel ch = new Channel(port, hello(a.get("--token"), served, false));
        while (true) {
            String line;
            try {
                line = ch.in.readLine();
            } catch (IOException e) {
                line = null;
            }
            if (line == null) {
                ch = reconnect(reconnectFile, used, port, served);
                if (ch == null) {
                    System.exit(0);
                }
                continue;
            }
            Matcher op = OP.matcher(line);
            if (!op.find() || !op.group(1).equals("invoke")) {
                ch.send("{\"ok\":false,\"error\":\"only invoke: a JVM's snapshots are CRIU images\"}");
                continue;
            }
            Matcher mm = MUTABILITY.matcher(line);
            double m = mm.find() ? Double.parseDouble(mm.group(1)) : 1.0;
            long t0 = System.nanoTime();
            String result;
            boolean ok = true;
            try {
                result = run(benchmark, m);
            } catch (RuntimeException e) {
                result = "{\"error\":\"" + e.toString().replace("\"", "'") + "\"}";
                ok = false;
            }
            double serverUs = (System.nanoTime() - t0) / 1000.0;
            served++;
            ch.send("{\"ok\":" + ok + ",\"server_us\":" + serverUs + ",\"result\":" + result + ",\"served\":" + served + "}");
        }
    }

    static Channel reconnect(String path, Set<String> used, int port, int served) {
        if (path == null) {
            return null;
        }
        try {
            String token = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8).trim();
            if (token.isEmpty() || !used.add(token)) {
                return null;
            }
            return new Channel(port, hello(token, served, true));
        } catch (IOException e) {
            return null;
        }
    }
}
