package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.tokenizer.Conversation.Message;
import nanochat4j.model.tokenizer.Conversation.Part;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Conversation rendering; mirrors the render tests of nanochat's tests/test_tokenizer.py, plus tool parts. */
class ChatRendererTest {

    static Tokenizer tok;

    @BeforeAll
    static void train() {
        tok = Tokenizer.train(TokenizerTest.CORPUS, 256 + 9 + 35);
    }

    private int sp(String name) {
        return tok.encodeSpecial(name);
    }

    private static List<Integer> concat(Object... parts) {
        List<Integer> out = new ArrayList<>();
        for (Object p : parts) {
            if (p instanceof Integer i) out.add(i);
            else for (int v : (int[]) p) out.add(v);
        }
        return out;
    }

    private static List<Integer> list(int[] a) {
        List<Integer> l = new ArrayList<>();
        for (int v : a) l.add(v);
        return l;
    }

    @Test
    void masksSuperviseExactlyAssistantTextAndAssistantEnd() {
        Conversation c = Conversation.of(Message.user("hi"), Message.assistant("hello!"), Message.user("bye"), Message.assistant("later"));
        ChatRenderer.Rendered r = tok.renderConversation(c);
        assertEquals(r.ids().length, r.mask().length);
        assertEquals(tok.bosId(), r.ids()[0]);
        assertEquals(0, r.mask()[0]);
        List<Integer> supervised = new ArrayList<>();
        for (int i = 0; i < r.ids().length; i++) {
            if (r.mask()[i] == 1) supervised.add(r.ids()[i]);
            if (r.ids()[i] == sp("<|user_start|>")) assertEquals(0, r.mask()[i]);
        }
        int end = sp("<|assistant_end|>");
        assertEquals(concat(tok.encode("hello!"), end, tok.encode("later"), end), supervised);
        // the full layout
        assertEquals(concat(tok.bosId(), sp("<|user_start|>"), tok.encode("hi"), sp("<|user_end|>"), sp("<|assistant_start|>"),
                tok.encode("hello!"), end, sp("<|user_start|>"), tok.encode("bye"), sp("<|user_end|>"), sp("<|assistant_start|>"),
                tok.encode("later"), end), list(r.ids()));
    }

    @Test
    void systemMessageIsMergedIntoTheFirstUserMessage() {
        Conversation without = Conversation.of(Message.user("sys prompt\n\nhi"), Message.assistant("yo"));
        Conversation with = Conversation.of(Message.system("sys prompt"), Message.user("hi"), Message.assistant("yo"));
        assertEquals(tok.renderConversation(without), tok.renderConversation(with));
    }

    @Test
    void toolCallsAreSupervisedAndToolOutputsAreNot() {
        Conversation c = Conversation.of(Message.user("2+3?"), Message.assistant(List.of(
                Part.text("Let me compute. "), Part.python("2+3"), Part.pythonOutput("5"), Part.text("It is 5."))));
        ChatRenderer.Rendered r = tok.renderConversation(c);
        List<Integer> expectedIds = concat(tok.bosId(), sp("<|user_start|>"), tok.encode("2+3?"), sp("<|user_end|>"), sp("<|assistant_start|>"),
                tok.encode("Let me compute. "), sp("<|python_start|>"), tok.encode("2+3"), sp("<|python_end|>"),
                sp("<|output_start|>"), tok.encode("5"), sp("<|output_end|>"), tok.encode("It is 5."), sp("<|assistant_end|>"));
        assertEquals(expectedIds, list(r.ids()));
        int prefix = 1 + 1 + tok.encode("2+3?").length + 1 + 1;
        int text1 = tok.encode("Let me compute. ").length, code = tok.encode("2+3").length, out = tok.encode("5").length;
        int text2 = tok.encode("It is 5.").length;
        List<Integer> expectedMask = new ArrayList<>();
        for (int i = 0; i < prefix; i++) expectedMask.add(0);
        for (int i = 0; i < text1 + 1 + code + 1; i++) expectedMask.add(1);
        for (int i = 0; i < 1 + out + 1; i++) expectedMask.add(0);
        for (int i = 0; i < text2 + 1; i++) expectedMask.add(1);
        assertEquals(expectedMask, list(r.mask()));
    }

    @Test
    void truncatesIdsAndMaskToMaxTokens() {
        Conversation c = Conversation.of(Message.user("hello ".repeat(100)), Message.assistant("world ".repeat(100)));
        ChatRenderer.Rendered r = tok.renderConversation(c, 32);
        assertEquals(32, r.ids().length);
        assertEquals(32, r.mask().length);
        ChatRenderer.Rendered full = tok.renderConversation(c, 100_000);
        assertArrayEquals(java.util.Arrays.copyOf(full.ids(), 32), r.ids());
    }

    @Test
    void renderForCompletionEndsWithAssistantStartAndDropsTheResponse() {
        Conversation c = Conversation.of(Message.user("hi"), Message.assistant("this gets stripped"));
        int[] ids = tok.renderForCompletion(c);
        assertEquals(sp("<|assistant_start|>"), ids[ids.length - 1]);
        int[] stripped = tok.encode("this gets stripped");
        for (int i = 0; i + stripped.length <= ids.length; i++) {
            assertFalse(java.util.Arrays.equals(ids, i, i + stripped.length, stripped, 0, stripped.length));
        }
        assertEquals(concat(tok.bosId(), sp("<|user_start|>"), tok.encode("hi"), sp("<|user_end|>"), sp("<|assistant_start|>")), list(ids));
    }

    @Test
    void badConversationsAreRejectedWithTheReason() {
        var e = assertThrows(IllegalArgumentException.class, () -> tok.renderConversation(Conversation.of(Message.assistant("hi"))));
        assertTrue(e.getMessage().contains("must be from user"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> tok.renderConversation(Conversation.of(Message.system("s"), Message.assistant("a"))));
        assertTrue(e.getMessage().contains("system message must be followed by a user message"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> tok.renderForCompletion(Conversation.of(Message.user("hi"))));
        assertTrue(e.getMessage().contains("last message must be from the assistant"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Part("image", "x"));
        assertTrue(e.getMessage().contains("unknown part type"), e.getMessage());
    }

    @Test
    void readsNanochatJson() throws Exception {
        String json = "{\"messages\":[{\"role\":\"user\",\"content\":\"2+3?\"},{\"role\":\"assistant\",\"content\":"
                + "[{\"type\":\"python\",\"text\":\"2+3\"},{\"type\":\"python_output\",\"text\":\"5\"}]}]}";
        Conversation c = Conversation.fromJson(new ObjectMapper().readTree(json));
        assertEquals(Conversation.of(Message.user("2+3?"), Message.assistant(List.of(Part.python("2+3"), Part.pythonOutput("5")))), c);
    }
}
