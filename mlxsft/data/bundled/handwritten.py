"""Hand-written conversations for the bundled dataset, and the open-ended eval questions.

``make_dataset.py`` splits ``CONVERSATIONS`` between train and valid and puts ``OPEN_QUESTIONS`` (prompts only,
no reference answer) into eval. Answers are short (1-5 sentences), accurate and plain, because a 135M model
learns the style it is shown. Write ``chat(user, assistant, user, assistant, ..., system=...)``.
"""

from __future__ import annotations

Message = dict[str, str]


def chat(*turns: str, system: str | None = None) -> list[Message]:
    """A conversation from alternating user / assistant texts, with an optional system instruction."""
    assert turns and len(turns) % 2 == 0, "turns alternate user, assistant and end with the assistant"
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return messages


COMPUTING = [
    chat(
        "What's the difference between a thread and a process?",
        "A process is a running program with its own memory space and resources, isolated from other processes. "
        "A thread is a unit of execution inside a process; all threads of a process share its memory, so they "
        "communicate cheaply but must coordinate access to shared data. Creating and switching threads is usually "
        "cheaper than doing the same with processes.",
        "So which should I use for CPU-heavy work in Python?",
        "Use processes, for example `multiprocessing` or `concurrent.futures.ProcessPoolExecutor`. In the standard "
        "CPython build the global interpreter lock lets only one thread run Python code at a time, so threads "
        "mainly help with I/O-bound work such as network requests.",
    ),
    chat(
        "Explain TCP vs UDP in two sentences.",
        "TCP is connection-oriented: it guarantees that data arrives complete and in order, retransmitting lost "
        "packets, at the cost of extra latency. UDP sends independent datagrams with no delivery or ordering "
        "guarantees, which makes it lighter and faster, so it suits video calls, online games and DNS lookups.",
    ),
    chat(
        "What is recursion?",
        "Recursion is when a function solves a problem by calling itself on a smaller version of the same problem. "
        "Every recursive function needs a base case that stops the calls; without one it recurses until the stack "
        "overflows.",
        "Can you show a tiny example in Python?",
        "Here is factorial:\n\n```python\ndef factorial(n):\n    if n <= 1:  # base case\n        return 1\n"
        "    return n * factorial(n - 1)\n```\n\n`factorial(4)` computes 4 * 3 * 2 * 1 = 24.",
    ),
    chat(
        "What is an API?",
        "An API (application programming interface) is a defined set of functions or requests that one piece of "
        "software offers so that other software can use it without knowing its internals. For example, a weather "
        "service's web API lets your app ask for a forecast with an HTTP request and read back the answer as JSON.",
    ),
    chat(
        "What is the difference between a compiler and an interpreter?",
        "A compiler translates a whole program, usually into machine code, before it runs, so the result executes "
        "fast on its own. An interpreter reads and executes the program step by step at run time, which makes "
        "experimenting easier but usually runs slower. Many languages mix both: Python compiles to bytecode, which "
        "its virtual machine then interprets.",
    ),
    chat(
        "Explain the stack and the heap in memory.",
        "The stack holds function call frames, such as local variables and return addresses, which are allocated "
        "and freed automatically in last-in, first-out order; it is very fast but small. The heap is a large pool "
        "for data whose size or lifetime isn't known in advance; it is allocated on request and freed explicitly "
        "or by a garbage collector, which is more flexible but slower.",
    ),
    chat(
        "What does Big-O notation mean?",
        "Big-O notation describes how an algorithm's running time or memory grows as the input size n grows, "
        "ignoring constant factors. For example, O(n) grows linearly with n, while O(n^2) means doubling the "
        "input roughly quadruples the work.",
        "And what is O(log n)?",
        "O(log n) means each step cuts the remaining problem by a constant fraction, so doubling the input adds "
        "only about one more step. Binary search on a sorted list is the classic example.",
    ),
    chat(
        "How does a hash table work?",
        "A hash table stores key-value pairs in an array. A hash function turns each key into an index, so a "
        "lookup jumps straight to the right slot instead of scanning everything, which takes O(1) time on average. "
        "When two keys land in the same slot (a collision), the table chains them together or probes for another "
        "free slot.",
    ),
    chat(
        "What is a deadlock?",
        "A deadlock is when two or more threads each wait for a resource that another one holds, so none of them "
        "can ever continue. For example, thread A holds lock 1 and waits for lock 2, while thread B holds lock 2 "
        "and waits for lock 1. A common prevention is to always acquire locks in the same order.",
    ),
    chat(
        "What's the difference between git merge and git rebase?",
        "`git merge` combines two branches with a merge commit and keeps both histories exactly as they happened. "
        "`git rebase` replays your branch's commits on top of another branch, giving a linear history but "
        "rewriting those commits. A common rule: rebase your own local work freely, but never rebase commits "
        "that others have already pulled.",
    ),
    chat(
        "What does DNS do?",
        "DNS (the Domain Name System) translates names like example.com into the IP addresses computers use to "
        "connect. Your device asks a resolver, which queries the DNS hierarchy (root servers, then the top-level "
        "domain, then the domain's own servers) and caches the answer for next time.",
    ),
    chat(
        "Why is HTTPS safer than HTTP?",
        "HTTPS is HTTP sent over TLS, which encrypts the traffic and proves the server's identity with a "
        "certificate. That stops others on the network from reading or changing what you send and receive, such "
        "as passwords, and makes it much harder to impersonate the site. Plain HTTP sends everything as readable "
        "text.",
    ),
    chat(
        "When would I pick a NoSQL database over a SQL one?",
        "A relational (SQL) database is the right default when your data has a clear structure and relationships "
        "and you need transactions and flexible queries. A NoSQL store fits when the data is schemaless or deeply "
        "nested, when you need very simple access patterns at huge scale, or when you want a specialized model "
        "such as a key-value cache or a graph.",
    ),
    chat(
        "What is a race condition?",
        "A race condition is a bug where the result depends on the unpredictable timing of concurrent threads or "
        "processes. For example, two threads both read a counter as 5, both add 1, and both write 6, so one "
        "increment is lost. Locks, atomic operations or avoiding shared mutable state prevent it.",
    ),
    chat(
        "Mutex or semaphore: what's the difference?",
        "A mutex is a lock that lets exactly one thread into a critical section at a time, and the thread that "
        "locked it unlocks it. A semaphore holds a counter and lets up to N threads proceed at once, which is "
        "useful for limiting access to a pool of resources such as database connections.",
    ),
    chat(
        "What is caching and why does it help?",
        "Caching keeps a copy of data that is slow to fetch or compute in a faster place, such as memory, so "
        "repeated requests are served quickly. It helps because most workloads ask for the same data again and "
        "again. The hard part is invalidation: knowing when a cached copy is stale and must be refreshed.",
    ),
    chat(
        "Array vs linked list: when is each better?",
        "An array stores elements next to each other, so reading element i is O(1) and iteration is fast, but "
        "inserting in the middle means shifting elements. A linked list stores nodes that point to the next one, "
        "so inserting or removing at a known node is O(1), but reaching the i-th element takes O(n). In practice "
        "arrays, or dynamic arrays like Python lists, are the better default.",
    ),
    chat(
        "How does binary search work?",
        "Binary search finds a value in a sorted list by checking the middle element. If the target is smaller, "
        "it continues in the left half; if larger, in the right half. Each step halves the range, so it needs "
        "only O(log n) comparisons.",
        "Why does the list have to be sorted?",
        "Because the algorithm decides which half to throw away by comparing with the middle element. That only "
        "works if everything on the left is smaller and everything on the right is larger; on an unsorted list it "
        "could discard the half that contains the target.",
    ),
    chat(
        "What is garbage collection?",
        "Garbage collection is automatic memory management: the runtime finds objects the program can no longer "
        "reach and frees their memory. It prevents bugs like forgetting to free memory or freeing it twice, at the "
        "cost of some CPU time and occasional pauses. Java, Go, Python and JavaScript all use it.",
    ),
    chat(
        "What does an operating system kernel do?",
        "The kernel is the core of the operating system and runs with full access to the hardware. It schedules "
        "processes on the CPUs, manages memory, talks to devices through drivers, and offers system calls so that "
        "programs can read files or use the network without touching the hardware directly.",
    ),
    chat(
        "Explain virtual memory in simple terms.",
        "Virtual memory gives each process its own private address space that looks like one large block of "
        "memory. The operating system and CPU map these addresses to physical RAM page by page, and can move "
        "rarely used pages to disk when RAM runs short. This keeps processes isolated from each other and lets "
        "them use more memory than is physically free, though swapping to disk is slow.",
    ),
    chat(
        "What is a REST API?",
        "A REST API exposes resources, such as users or orders, at URLs and lets clients act on them with "
        "standard HTTP methods: GET to read, POST to create, PUT or PATCH to update and DELETE to remove. Each "
        "request is stateless and carries everything the server needs, and responses are usually JSON.",
    ),
    chat(
        "What is JSON?",
        "JSON (JavaScript Object Notation) is a lightweight text format for structured data built from objects "
        "(key-value pairs in curly braces), arrays, strings, numbers, booleans and null. It is easy for people to "
        "read and for almost every language to parse, which is why web APIs use it so widely.",
        "Show me a small example.",
        '```json\n{"name": "Ada", "age": 36, "languages": ["English", "French"], "active": true}\n```\n\n'
        "This is one object holding a string, a number, an array and a boolean.",
    ),
    chat(
        "What is a unit test?",
        "A unit test is a small automated test that checks one piece of code, such as a single function, in "
        "isolation. It calls the code with known inputs and asserts the expected output, so when a later change "
        "breaks something, the failing test points straight at it.",
    ),
    chat(
        "How is a Docker container different from a virtual machine?",
        "A virtual machine emulates a whole computer and runs its own operating system on a hypervisor, so it is "
        "strongly isolated but heavy and slow to start. A container shares the host's kernel and packages only "
        "the application and its libraries, so it starts in seconds and uses far less memory, with somewhat "
        "weaker isolation.",
    ),
    chat(
        "What is a pointer in C?",
        "A pointer is a variable that holds the memory address of another value. After `int *p = &x;`, `p` "
        "stores where `x` lives, and `*p` reads or writes `x` through that address. Pointers make arrays, dynamic "
        "memory and linked data structures possible, but a wrong pointer can crash the program or corrupt memory.",
    ),
    chat(
        "What does a database index do?",
        "An index is an extra data structure, usually a B-tree, that keeps a column's values sorted with pointers "
        "to their rows. It lets the database find matching rows without scanning the whole table, which makes "
        "lookups much faster. The cost is extra storage and slightly slower writes, since the index must be kept "
        "up to date.",
    ),
    chat(
        "What is a regular expression?",
        "A regular expression (regex) is a compact pattern that describes a set of strings, used to search, "
        "validate or extract text. For example, `\\d+` matches one or more digits, and `^cat` matches \"cat\" only "
        "at the start of a line.",
        "Write one that matches a US ZIP code like 12345.",
        "`^\\d{5}$` matches exactly five digits. To also accept the ZIP+4 form, such as 12345-6789, use "
        "`^\\d{5}(-\\d{4})?$`.",
    ),
    chat(
        "What does idempotent mean in programming?",
        "An operation is idempotent if doing it several times has the same effect as doing it once. In HTTP, PUT "
        "and DELETE are meant to be idempotent, while POST usually is not: sending the same POST twice may create "
        "two orders. Idempotent operations make retries after network failures safe.",
    ),
    chat(
        "What is a closure in Python?",
        "A closure is an inner function that remembers variables from the enclosing function even after that "
        "function has returned. For example, `def make_adder(n): return lambda x: x + n` returns a function that "
        "still knows `n`, so `make_adder(5)(2)` gives 7.",
    ),
    chat(
        "What is asynchronous programming?",
        "Asynchronous programming lets a program start a slow operation, such as a network request, and do other "
        "work while it waits instead of blocking. In Python, `async def` functions and `await` let one thread "
        "juggle thousands of waiting tasks through an event loop. It speeds up I/O-bound work, not heavy "
        "computation.",
    ),
    chat(
        "What's the difference between a list and a tuple in Python?",
        "A list is mutable: you can append, remove and change its items. A tuple cannot be changed after it is "
        "created, which makes it hashable when its items are, so it can be a dictionary key, and it signals a "
        "fixed record such as an (x, y) point.",
    ),
    chat(
        "Stack vs queue?",
        "A stack is last-in, first-out (LIFO): you push and pop at the same end, like a pile of plates. A queue "
        "is first-in, first-out (FIFO): you add at the back and remove from the front, like a line at a shop.",
        "Where is a stack used in practice?",
        "Function calls use a call stack, undo features keep a stack of past actions, and depth-first search and "
        "expression parsing use stacks too.",
    ),
    chat(
        "How does public-key cryptography work, briefly?",
        "Each party has a key pair: a public key anyone may see and a private key kept secret. Data encrypted "
        "with the public key can only be decrypted with the matching private key, and a signature made with the "
        "private key can be checked by anyone with the public key. This lets strangers communicate securely "
        "without sharing a secret first, which is the basis of HTTPS.",
    ),
    chat(
        "What is a load balancer?",
        "A load balancer sits in front of several servers and spreads incoming requests across them, for example "
        "in turn or to the least busy one. It raises throughput and availability, because it stops sending "
        "traffic to a server that fails its health checks.",
    ),
    chat(
        "Latency vs throughput?",
        "Latency is how long one operation takes from start to finish, such as 50 ms for a request. Throughput "
        "is how many operations complete per unit of time, such as 2,000 requests per second. Batching often "
        "raises throughput while making each item's latency worse.",
    ),
    chat(
        "What is an environment variable?",
        "An environment variable is a named value that the operating system passes to a running program, such as "
        "PATH or HOME. Programs read them for configuration, like which server to connect to, so the same code "
        "can behave differently on different machines without edits.",
    ),
    chat(
        "What does a SQL JOIN do?",
        "A JOIN combines rows from two tables using a related column, such as `orders.customer_id = "
        "customers.id`. An INNER JOIN keeps only rows that match in both tables, while a LEFT JOIN keeps every "
        "row of the left table and fills in NULL where there is no match.",
    ),
    chat(
        "What is a CPU cache?",
        "A CPU cache is a small, very fast memory on the processor that keeps copies of recently used data from "
        "main memory. RAM is much slower than the CPU, so finding data in the cache instead can be tens of times "
        "faster. That is why code that reads memory sequentially often runs much faster than code that jumps "
        "around.",
    ),
]

MACHINE_LEARNING = [
    chat(
        "Give me a 1-sentence introduction of LLM.",
        "A large language model (LLM) is a neural network, usually a transformer, trained on huge amounts of text "
        "to predict the next token, which lets it answer questions, write and summarize text, and follow "
        "instructions.",
    ),
    chat(
        "What is a token in an LLM?",
        "A token is the unit of text a language model reads and writes: often a whole common word, a piece of a "
        "longer word, or a punctuation mark. The tokenizer turns text into a sequence of token ids before the "
        "model sees it; in English a token is about four characters on average.",
        "So how many tokens is 'unbelievable'?",
        "It depends on the tokenizer: a typical one splits it into two or three pieces, such as \"un\", "
        "\"believ\" and \"able\". Run the model's own tokenizer on the word to know for sure.",
    ),
    chat(
        "What is fine-tuning?",
        "Fine-tuning takes a model that has already been pretrained and continues training it on a smaller, "
        "task-specific dataset. The model keeps its general knowledge but adapts its behavior, style or format "
        "to the new task, with far less data and compute than training from scratch.",
    ),
    chat(
        "What is supervised fine-tuning (SFT) for chat models?",
        "SFT trains a pretrained model on example conversations: prompts paired with the desired responses. The "
        "loss is the usual next-token cross-entropy, but computed only on the assistant's tokens, so the model "
        "learns how to respond rather than how to imitate users. It is usually the first step in turning a base "
        "model into an assistant.",
    ),
    chat(
        "Explain LoRA in simple terms.",
        "LoRA (low-rank adaptation) freezes the original weights and learns a small update for selected layers "
        "instead. Each update is the product of two thin matrices whose rank r is small, such as 8, so only a "
        "tiny fraction of the parameters is trained. After training, the update can be merged back into the "
        "weights.",
        "Why does it save so much memory?",
        "The optimizer only keeps gradients and state, such as Adam's two moment estimates, for the small LoRA "
        "matrices instead of for every weight. The frozen base weights still have to be in memory, but the "
        "training overhead shrinks dramatically, and the saved adapter is only a few megabytes.",
    ),
    chat(
        "What is overfitting?",
        "Overfitting is when a model learns the training data too closely, including its noise and quirks, so it "
        "does well on the training examples but poorly on new data.",
        "How can I tell if my model is overfitting?",
        "Watch the validation loss next to the training loss. If the training loss keeps falling while the "
        "validation loss stops improving and starts to rise, the model is overfitting. Early stopping, more data, "
        "regularization or fewer epochs help.",
    ),
    chat(
        "Why do we need separate training, validation and test sets?",
        "The training set is what the model learns from. The validation set guides choices during development, "
        "such as the learning rate or when to stop, and the test set is held back until the end to give an honest "
        "estimate on unseen data. Reusing the same data for all three would make results look better than they "
        "really are.",
    ),
    chat(
        "What is the learning rate?",
        "The learning rate is the size of each update to the model's weights during training. Too high and "
        "training becomes unstable or diverges; too low and the model learns very slowly. It is often warmed up "
        "at the start and decayed toward the end.",
    ),
    chat(
        "What is cross-entropy loss for language models?",
        "At each position the model outputs a probability for every token in its vocabulary, and cross-entropy is "
        "the negative log of the probability it gave to the correct next token. Averaged over tokens, it is low "
        "when the model confidently predicts the right tokens and high when it is surprised. Minimizing it "
        "maximizes the likelihood of the training text.",
    ),
    chat(
        "Explain gradient descent in two sentences.",
        "Gradient descent lowers a loss by computing its gradient with respect to the model's parameters, which "
        "points in the direction where the loss grows fastest, and moving the parameters a small step the "
        "opposite way. Repeating this over many batches of data gradually reduces the loss.",
    ),
    chat(
        "What's the difference between an epoch, a batch and a step?",
        "A batch is a group of examples processed together. A step is one update of the parameters, usually "
        "computed from one batch. An epoch is one full pass over the training set, so with 1,000 examples and a "
        "batch size of 10, an epoch is 100 steps.",
    ),
    chat(
        "What is an embedding?",
        "An embedding is a vector of numbers that represents an item, such as a token, a sentence or an image, so "
        "that similar items get similar vectors. Models learn embeddings during training, and comparing them with "
        "cosine similarity powers search, clustering and recommendations.",
    ),
    chat(
        "What is attention in a transformer?",
        "Attention lets each token build its representation by looking at other tokens and weighing how much each "
        "one matters. Every token produces a query, a key and a value; its query is compared with all keys to get "
        "weights, and its output is the weighted sum of the values. This is how the model links, for example, a "
        "pronoun to the noun it refers to.",
    ),
    chat(
        "What does temperature do when sampling from an LLM?",
        "Temperature rescales the model's output probabilities before a token is sampled. A low temperature, such "
        "as 0.2, makes the likeliest tokens even likelier, giving focused and repeatable text; a high one, such "
        "as 1.2, flattens the distribution, giving more varied but riskier text.",
        "What happens at temperature 0?",
        "Temperature 0 is treated as greedy decoding: the model always picks the single most likely token, so "
        "the same prompt gives the same output.",
    ),
    chat(
        "What is a context window?",
        "The context window is the maximum number of tokens a model can take into account at once, counting both "
        "the prompt and the text it generates. Anything beyond it has to be cut off or summarized, because the "
        "model cannot see it.",
    ),
    chat(
        "Why do LLMs hallucinate?",
        "An LLM generates the most plausible continuation of the text, not a checked fact, so when it lacks the "
        "knowledge it can still produce a fluent but false answer. Gaps in the training data, vague prompts and "
        "random sampling make this more likely. Grounding answers in retrieved sources helps reduce it.",
    ),
    chat(
        "What is quantization of a model?",
        "Quantization stores a model's weights with fewer bits, for example 4-bit or 8-bit integers instead of "
        "16-bit floats. This shrinks memory use and often speeds up inference, at the cost of a small loss in "
        "accuracy.",
    ),
    chat(
        "What is RLHF?",
        "RLHF (reinforcement learning from human feedback) improves a model using human preferences. People "
        "compare pairs of answers, a reward model learns to predict which one they prefer, and the language model "
        "is then optimized to produce answers the reward model scores highly. Methods like DPO skip the separate "
        "reward model and learn from the preference pairs directly.",
    ),
    chat(
        "What is a chat template?",
        "A chat template defines how a list of messages (system, user, assistant) becomes the single token "
        "sequence a model was trained on, including the special tokens that mark where each turn starts and "
        "ends. Training and inference must use the same template, or a fine-tuned model may answer badly or "
        "never stop.",
    ),
    chat(
        "What is a system prompt?",
        "A system prompt is an instruction at the start of a conversation, in its own system role, that sets "
        "the assistant's behavior for the whole chat, such as its tone, role or rules. It describes how to "
        "answer rather than what to answer.",
    ),
    chat(
        "Why is the loss usually computed only on assistant tokens during SFT?",
        "The goal is to teach the model how to respond, so only the response tokens are supervised. Training on "
        "the prompts too would spend capacity on imitating users and could teach the model to write their side "
        "of the conversation. The end-of-turn token is supervised as well, so the model learns when to stop.",
    ),
    chat(
        "What is perplexity?",
        "Perplexity measures how well a language model predicts text: it is the exponential of the average "
        "cross-entropy loss per token. A perplexity of 10 means the model is, on average, as uncertain as if it "
        "were choosing uniformly among 10 tokens, so lower is better.",
    ),
    chat(
        "How does byte-pair encoding (BPE) tokenization work?",
        "BPE starts from single characters or bytes and repeatedly merges the most frequent adjacent pair into a "
        "new token, until the vocabulary reaches a target size. Common words end up as single tokens while rare "
        "words are split into known pieces, so any text can be encoded.",
    ),
    chat(
        "What does it mean that a model has 135 million parameters?",
        "Parameters are the learned numbers inside the model, mostly the entries of its weight matrices. A 135M "
        "model has 135 million of them, which take about 270 MB in 16-bit precision. More parameters usually mean "
        "more capacity, but also more memory and compute.",
    ),
    chat(
        "What is the difference between pretraining and fine-tuning?",
        "Pretraining teaches a model general language ability by predicting the next token over a huge, broad "
        "text corpus, and it takes most of the compute. Fine-tuning then adapts the pretrained model to a "
        "specific task or behavior with a much smaller, curated dataset.",
    ),
    chat(
        "Why are GPUs used for deep learning?",
        "Training a neural network is dominated by large matrix multiplications, which split into many "
        "independent operations. GPUs have thousands of simple cores and very high memory bandwidth, so they run "
        "these operations in parallel far faster than a CPU.",
    ),
    chat(
        "What is dropout?",
        "Dropout is a regularization technique that randomly sets a fraction of a layer's activations to zero "
        "during training, for example 10%. This stops the network from relying too much on any single unit and "
        "reduces overfitting. It is switched off at inference time.",
    ),
    chat(
        "What is a neural network, in one paragraph?",
        "A neural network is a function built from layers of simple units. Each layer multiplies its input by a "
        "weight matrix, adds a bias and applies a nonlinear activation, and stacking layers lets the network "
        "represent complex patterns. The weights are learned from data by gradient descent, with backpropagation "
        "computing how each weight affects the error.",
    ),
    chat(
        "Classification vs regression?",
        "Classification predicts a category, such as spam or not spam, or which digit is in an image. Regression "
        "predicts a continuous number, such as a house price or tomorrow's temperature.",
    ),
    chat(
        "What is retrieval-augmented generation (RAG)?",
        "RAG answers a question by first retrieving relevant documents, for example with embedding search over a "
        "knowledge base, and then giving them to the language model together with the question. The model can "
        "then ground its answer in current or private information it was never trained on, which also reduces "
        "hallucinations.",
    ),
    chat(
        "Greedy decoding or sampling: which should I use?",
        "Greedy decoding always picks the most likely next token; it is deterministic and suits tasks with one "
        "right answer, such as math or extraction. Sampling draws tokens at random according to their "
        "probabilities, often with a temperature or top-p, which gives more varied and natural text for chat and "
        "creative writing.",
    ),
    chat(
        "Why do neural networks need activation functions?",
        "Without a nonlinear activation, any stack of linear layers collapses into a single linear "
        "transformation, however deep it is. Activations such as ReLU or GELU add nonlinearity, which lets the "
        "network model complex, curved relationships.",
    ),
    chat(
        "What is few-shot prompting?",
        "Few-shot prompting puts a handful of worked examples of a task in the prompt before the real question. "
        "The model picks up the pattern and format from the examples without any training, which often improves "
        "accuracy.",
    ),
    chat(
        "What is knowledge distillation?",
        "Knowledge distillation trains a small student model to imitate a larger teacher model, usually by "
        "matching the teacher's output probabilities or its generated answers. The student is much cheaper to "
        "run while keeping much of the teacher's quality.",
    ),
    chat(
        "How does batch size affect training?",
        "Larger batches give smoother gradient estimates and use the hardware more efficiently, but need more "
        "memory and often a higher learning rate. Smaller batches fit in less memory and add noise that can help "
        "generalization, but an epoch takes more steps.",
        "What if the batch I want doesn't fit in memory?",
        "Use gradient accumulation: run several small batches, add up their gradients, and take one optimizer "
        "step. The update is the same as for one large batch, while only one small batch is in memory at a time.",
    ),
    chat(
        "What is bfloat16 and why is it popular for training?",
        "bfloat16 is a 16-bit floating-point format with the same 8-bit exponent as float32 but a shorter "
        "mantissa. It halves memory and speeds up math compared with float32 while keeping the same numeric "
        "range, so values rarely overflow, which makes training more stable than with float16.",
    ),
    chat(
        "What does an exact-match score measure?",
        "Exact match counts an answer as correct only if it equals the reference answer, usually after light "
        "normalization such as trimming spaces and ignoring case. It is strict and easy to compute, so it suits "
        "questions with one short right answer, like arithmetic or dates.",
    ),
    chat(
        "What is backpropagation?",
        "Backpropagation computes the gradient of the loss with respect to every weight in a neural network. It "
        "applies the chain rule layer by layer from the output back to the input, reusing intermediate results, "
        "so the whole gradient costs only about twice as much as a forward pass.",
    ),
    chat(
        "What's the difference between a base model and an instruct model?",
        "A base model is only pretrained to continue text, so given a question it may ramble or simply continue "
        "with more questions. An instruct model has been further fine-tuned on conversations, and often on "
        "preferences, so it follows instructions and answers in a chat format.",
    ),
    chat(
        "What is machine learning?",
        "Machine learning is a way of building software that learns patterns from data to make predictions or "
        "decisions, instead of following rules written by hand.",
        system="You are a concise assistant. Answer in one sentence.",
    ),
]

WRITING = [
    chat(
        "Summarize in one sentence: The city council met on Tuesday to discuss the new bike lanes. After two hours "
        "of debate, members voted 7 to 2 to build lanes on Main Street and Oak Avenue, with construction starting "
        "in the spring.",
        "On Tuesday the city council voted 7 to 2 to build bike lanes on Main Street and Oak Avenue, starting in "
        "the spring.",
    ),
    chat(
        "Summarize in one sentence: Photosynthesis is the process plants use to turn light into chemical energy. "
        "Using sunlight, they combine carbon dioxide from the air with water from the soil to make glucose, and "
        "they release oxygen as a by-product.",
        "Plants use sunlight to turn carbon dioxide and water into glucose for energy, releasing oxygen as they "
        "do.",
    ),
    chat(
        "Give a one-sentence summary of this: Our quarterly sales rose 12% thanks to strong demand in Europe, but "
        "profits fell slightly because shipping costs doubled. We plan to renegotiate our freight contracts next "
        "quarter.",
        "Sales rose 12% on strong European demand, but doubled shipping costs trimmed profits, so the company will "
        "renegotiate its freight contracts next quarter.",
    ),
    chat(
        "Summarize in one sentence: The study followed 2,000 adults for ten years and found that those who walked "
        "at least 30 minutes a day had a 20% lower risk of heart disease than those who rarely exercised, even "
        "after accounting for diet and smoking.",
        "A ten-year study of 2,000 adults found that walking at least 30 minutes a day was linked to a 20% lower "
        "risk of heart disease, even after accounting for diet and smoking.",
        "Now make it shorter, under 15 words.",
        "Daily 30-minute walks were linked to 20% less heart disease risk.",
    ),
    chat(
        "Rewrite this politely: Send me the files now.",
        "Could you please send me the files as soon as possible? Thank you!",
    ),
    chat(
        "Rewrite politely: Your code is wrong, fix it.",
        "I think there may be an issue in the code. Could you take another look and fix it when you have a "
        "moment? Thanks!",
    ),
    chat(
        "Make this message more polite: I can't come to your meeting.",
        "Thank you for the invitation. Unfortunately, I won't be able to attend the meeting, but I'd be glad to "
        "catch up on anything I missed.",
    ),
    chat(
        "Rewrite this politely: Stop emailing me about this.",
        "I'd appreciate it if we could pause the emails on this topic for now. Thank you for understanding.",
        "Now make it a bit warmer.",
        "Thanks so much for keeping me in the loop! I have everything I need on this topic for now, so there's no "
        "need for more emails. I really appreciate your understanding.",
    ),
    chat(
        "Make this sentence more concise: In my personal opinion, I think that we should probably consider the "
        "possibility of moving the meeting to a later date.",
        "I think we should consider postponing the meeting.",
    ),
    chat(
        "Make this more concise: Due to the fact that it was raining, we made the decision to stay inside the "
        "house.",
        "Because it was raining, we decided to stay inside.",
    ),
    chat(
        "Fix the grammar: She don't like apples and she have never tried a mango.",
        "She doesn't like apples, and she has never tried a mango.",
    ),
    chat(
        "Correct this sentence: Their going to the park tomorrow, weather or not it rains.",
        "They're going to the park tomorrow, whether or not it rains.",
    ),
    chat(
        "Fix the grammar: Me and him goes to the same school since 2019.",
        "He and I have gone to the same school since 2019.",
    ),
    chat(
        "Translate to French: Good morning, how are you?",
        "Bonjour, comment allez-vous ?",
    ),
    chat(
        "Translate to Spanish: Where is the train station?",
        "¿Dónde está la estación de tren?",
    ),
    chat(
        "Translate 'thank you very much' into German.",
        "Vielen Dank.",
        "And into Italian?",
        "Grazie mille.",
    ),
    chat(
        "Write a haiku about autumn.",
        "Crisp leaves drift and fall\nthe maple lets go of red\ncool wind carries home",
    ),
    chat(
        "Suggest a subject line for an email asking my team to submit their timesheets by Friday.",
        "Reminder: Please Submit Your Timesheets by Friday",
    ),
    chat(
        "Give me three title ideas for a blog post about learning to cook at home.",
        "1. Home Cooking for Beginners: Start Here\n2. From Takeout to Tasty: Learning to Cook at Home\n"
        "3. Five Simple Meals That Taught Me to Cook",
    ),
    chat(
        "Turn this into a bulleted list: We need eggs, flour, two liters of milk, and some butter.",
        "- Eggs\n- Flour\n- Milk (2 liters)\n- Butter",
    ),
    chat(
        "Explain the internet to a five-year-old.",
        "The internet is like a giant web of roads that connects computers all over the world. When you watch a "
        "video, tiny messages zoom along those roads from a faraway computer to yours, and your screen turns them "
        "into the video.",
        "Now explain it to a college student.",
        "The internet is a global network of networks that exchange data using shared protocols, mainly TCP/IP. "
        "Data is split into packets addressed by IP address and forwarded hop by hop by routers, and TCP "
        "reassembles them reliably at the destination. The web, email and streaming are applications built on "
        "top of this.",
    ),
    chat(
        "Write a one-sentence product description for a reusable water bottle.",
        "This leak-proof, insulated steel bottle keeps drinks cold all day and hot for hours, so you can skip "
        "single-use plastic wherever you go.",
    ),
    chat(
        "Rewrite in a formal tone: Hey, can't make it today, let's do tomorrow?",
        "Unfortunately, I am unable to attend today. Would tomorrow be convenient for you instead?",
    ),
    chat(
        "Rewrite in a casual tone: We regret to inform you that the event has been postponed.",
        "Heads up: the event's been pushed back. Sorry about that!",
    ),
    chat(
        "Give me a 1-sentence introduction of the Linux operating system.",
        "Linux is a free, open-source operating system kernel, first released by Linus Torvalds in 1991, that "
        "powers most servers, Android phones and countless embedded devices.",
    ),
    chat(
        "Describe a cat in exactly three words.",
        "Curious, graceful, independent.",
    ),
    chat(
        "Write a short thank-you note to a colleague who helped me fix a bug.",
        "Hi Sam, thank you so much for helping me track down that bug yesterday. Your debugging tips saved me "
        "hours, and I learned a lot watching you work. I owe you a coffee!",
        "Make it more formal and drop the name.",
        "Thank you for your help in resolving the bug yesterday. Your guidance saved me considerable time, and I "
        "learned a great deal from your approach. I truly appreciate it.",
    ),
    chat(
        "Answer with yes or no: Is the Pacific the largest ocean on Earth?",
        "Yes.",
    ),
    chat(
        "Give me an analogy for how a firewall works.",
        "A firewall is like a security guard at a building's entrance who checks every visitor against a list of "
        "rules: approved visitors get in, and everyone else is turned away at the door.",
    ),
    chat(
        "Write a two-sentence story about a robot learning to paint.",
        "The robot spent a thousand nights copying sunsets pixel by pixel, and every painting was perfect and "
        "lifeless. Then one evening its brush slipped, leaving a crooked orange streak, and for the first time it "
        "kept the mistake.",
    ),
    chat(
        "Summarize the plot of Romeo and Juliet in one sentence.",
        "Two young lovers from feuding families in Verona marry in secret, and a chain of misunderstandings leads "
        "both to take their own lives, which finally reconciles their families.",
    ),
    chat(
        "Rewrite this sentence in the active voice: The report was written by the intern.",
        "The intern wrote the report.",
    ),
    chat(
        "Give me a tip for writing clearer emails.",
        "Put your main point or request in the first sentence, then add only the details the reader needs to act "
        "on it. A specific subject line and short paragraphs make it even easier to read.",
    ),
    chat(
        "hey whats a good way to start learning to code",
        "A good way to begin is to choose one beginner-friendly language, such as Python, and follow a structured "
        "free course. Practise every day with small projects, such as a calculator or a to-do list, because "
        "building things teaches far more than reading alone.",
        system="Reply in clear, formal English.",
    ),
    chat(
        "What is the capital of France?",
        "La capital de Francia es París.",
        system="Always answer in Spanish.",
    ),
    chat(
        "List three fruits that are high in vitamin C.",
        "Oranges, kiwis and strawberries.",
    ),
]

EVERYDAY = [
    chat(
        "Why is the sky blue?",
        "Sunlight contains all colors, and air molecules scatter short wavelengths like blue much more strongly "
        "than long ones like red (Rayleigh scattering). That scattered blue light reaches your eyes from every "
        "direction, so the sky looks blue. At sunset the light crosses more air, so more blue is scattered away "
        "and reds and oranges remain.",
    ),
    chat(
        "What is the capital of Australia?",
        "Canberra.",
        "And of Canada?",
        "Ottawa.",
    ),
    chat(
        "How many continents are there?",
        "By the most common convention there are seven: Africa, Antarctica, Asia, Australia (Oceania), Europe, "
        "North America and South America. Some countries count fewer, for example by treating the Americas as "
        "one continent.",
    ),
    chat(
        "At what temperature does water boil?",
        "At sea level, pure water boils at 100 °C (212 °F). Higher up, the air pressure is lower, so it boils at "
        "a lower temperature, around 90 °C at 3,000 meters.",
    ),
    chat(
        "What causes the seasons?",
        "The seasons are caused by the tilt of Earth's axis, about 23.4 degrees, not by its distance from the "
        "Sun. As Earth orbits, each hemisphere takes turns leaning toward the Sun, getting more direct sunlight "
        "and longer days (summer), and then leaning away (winter).",
    ),
    chat(
        "What's the difference between weather and climate?",
        "Weather is the short-term state of the atmosphere in a place, like today's rain or tomorrow's heat. "
        "Climate is the long-term pattern of weather in a region, usually averaged over 30 years or more.",
    ),
    chat(
        "How do vaccines work?",
        "A vaccine shows your immune system a harmless piece or weakened form of a germ, or instructions for "
        "making one of its proteins. Your body learns to recognize it and builds antibodies and memory cells, so "
        "if you meet the real germ later, your immune system responds quickly, before you get seriously ill.",
    ),
    chat(
        "What is inflation?",
        "Inflation is the general rise in prices over time, which means each unit of money buys less. It is "
        "usually measured as the yearly change in a consumer price index, and many central banks aim for about "
        "2% a year.",
    ),
    chat(
        "Why do we have leap years?",
        "One trip of Earth around the Sun takes about 365.24 days, not exactly 365. Adding February 29 every four "
        "years keeps the calendar in line with the seasons. To correct the small overshoot, century years are "
        "leap years only if divisible by 400, so 2000 was a leap year but 1900 was not.",
    ),
    chat(
        "How fast is the speed of light?",
        "In a vacuum, light travels at exactly 299,792,458 meters per second, about 300,000 km per second. "
        "Sunlight takes about 8 minutes and 20 seconds to reach Earth.",
    ),
    chat(
        "What is the largest planet in our solar system?",
        "Jupiter. It is a gas giant about 11 times wider than Earth and more massive than all the other planets "
        "combined.",
    ),
    chat(
        "Give me three tips for better sleep.",
        "1. Go to bed and wake up at the same time every day, even on weekends.\n2. Keep your bedroom dark, quiet "
        "and cool, and put screens away an hour before bed.\n3. Avoid caffeine in the afternoon and heavy meals "
        "late in the evening.",
    ),
    chat(
        "What's the difference between a virus and a bacterium?",
        "Bacteria are single-celled living organisms that can reproduce on their own, and many are harmless or "
        "even helpful. Viruses are much smaller, are not cells, and can only reproduce inside a host's cells. "
        "That is why antibiotics work against bacteria but not against viruses.",
    ),
    chat(
        "What is compound interest?",
        "Compound interest is interest earned on both your original money and the interest it has already "
        "earned. Because the interest itself earns interest, savings grow faster and faster over time.",
        "Can you give a quick example?",
        "Put $1,000 in an account paying 10% a year. After one year you have $1,100; in the second year you earn "
        "10% of $1,100, so you have $1,210, not $1,200. After ten years it grows to about $2,594, compared with "
        "$2,000 under simple interest.",
    ),
    chat(
        "How does a refrigerator keep food cold?",
        "A refrigerator pumps heat out rather than making cold. A refrigerant evaporates in coils inside, "
        "absorbing heat from the food compartment; a compressor then squeezes the vapor and sends it to coils on "
        "the outside, where it releases that heat into the room and turns back into a liquid. The cycle repeats "
        "continuously.",
    ),
    chat(
        "Why does ice float on water?",
        "When water freezes, hydrogen bonds lock its molecules into an open crystal structure that spaces them "
        "farther apart than in liquid water. Ice is therefore about 9% less dense than water, so it floats. That "
        "is why lakes freeze from the top down, protecting the life underneath.",
    ),
    chat(
        "What is DNA?",
        "DNA (deoxyribonucleic acid) is the molecule that carries the genetic instructions of living things. It "
        "is a double helix of two strands built from four bases, A, T, C and G, and the order of those bases "
        "encodes the genes that tell cells which proteins to make.",
    ),
    chat(
        "What causes ocean tides?",
        "Tides are caused mainly by the Moon's gravity, which raises a bulge of water on the side of Earth facing "
        "it and another on the opposite side. As Earth rotates through these bulges, most coasts get two high and "
        "two low tides a day. The Sun adds to the effect, giving bigger spring tides at new and full moon.",
    ),
    chat(
        "What is GDP?",
        "Gross domestic product (GDP) is the total market value of all final goods and services produced in a "
        "country in a given period, usually a year or a quarter. It is the most common measure of the size of an "
        "economy, and its growth rate shows whether the economy is expanding or shrinking.",
    ),
    chat(
        "How do I make a strong password?",
        "Use a long passphrase of four or more random, unrelated words, or at least 12 random characters, and "
        "never reuse it on another site. A password manager can generate and remember unique passwords for you.",
        "Should I also turn on two-factor authentication?",
        "Yes. With two-factor authentication a stolen password alone is not enough to get into your account. An "
        "authenticator app or a hardware key is safer than codes sent by SMS.",
    ),
    chat(
        "What is the greenhouse effect?",
        "The greenhouse effect is the warming of Earth's surface by gases such as carbon dioxide, methane and "
        "water vapor, which let sunlight through but absorb part of the heat Earth radiates back. Without it "
        "Earth would average about -18 °C instead of about 15 °C; adding more of these gases strengthens the "
        "effect and warms the planet.",
    ),
    chat(
        "How many bones are in the adult human body?",
        "An adult has 206 bones. Babies are born with around 270 to 300, and many of them fuse together during "
        "growth.",
    ),
    chat(
        "Who wrote Pride and Prejudice?",
        "Jane Austen, who published it in 1813.",
    ),
    chat(
        "What is the metric system?",
        "The metric system is a decimal system of measurement built on base units such as the meter for length, "
        "the kilogram for mass and the second for time. Units scale by powers of ten with prefixes like kilo- "
        "(1,000) and centi- (1/100), which makes conversions easy. Its modern form, the SI, is used almost "
        "everywhere.",
    ),
    chat(
        "How do I boil an egg so the yolk is still runny?",
        "Lower a cold egg into water that is already boiling and cook it for about 6 minutes, then move it to "
        "cold water for a minute to stop the cooking. Add a minute for a jammy yolk or for very large eggs.",
    ),
    chat(
        "Why do we see lightning before we hear thunder?",
        "Light travels about 300,000 km per second, while sound travels only about 343 meters per second in air, "
        "so the flash arrives almost instantly and the thunder lags behind. Counting the seconds between them and "
        "dividing by three gives the distance in kilometers.",
    ),
    chat(
        "What is the tallest mountain in the world?",
        "Mount Everest, at about 8,849 meters (29,032 feet) above sea level.",
        "Measured from base to peak, is it still the tallest?",
        "No. Mauna Kea in Hawaii rises about 10,200 meters from its base on the ocean floor, more than Everest, "
        "though only about 4,207 meters of it is above sea level.",
    ),
    chat(
        "What does a calorie measure?",
        "A calorie measures energy. The Calorie on food labels is a kilocalorie, the energy needed to warm 1 "
        "kilogram of water by 1 °C, and it tells you how much energy the food gives your body.",
    ),
    chat(
        "What is the difference between a recession and a depression?",
        "A recession is a significant, widespread decline in economic activity lasting months, often described "
        "as two consecutive quarters of shrinking GDP. A depression is a much deeper and longer downturn that "
        "lasts years, like the Great Depression of the 1930s.",
    ),
    chat(
        "How do airplanes stay in the air?",
        "A plane's wings are shaped and angled so that they push air downward as the plane moves, creating lower "
        "pressure above the wing and higher pressure below. That difference produces lift, and once the plane is "
        "fast enough, lift balances its weight. The engines provide the thrust that keeps it moving against drag.",
    ),
    chat(
        "Name the planets of the solar system in order from the Sun.",
        "Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune.",
    ),
    chat(
        "How long should I steep green tea?",
        "Steep green tea for about 2 to 3 minutes in water around 70 to 80 °C, just below boiling. Boiling water "
        "or a long steep brings out more bitterness.",
    ),
    chat(
        "I have eggs, spinach and cheese. What can I make for breakfast?",
        "A spinach and cheese omelette: whisk two or three eggs with a pinch of salt, wilt a handful of spinach in "
        "a buttered pan, pour the eggs over, add the cheese when they are almost set, then fold and serve.",
        "I don't have a non-stick pan. Any tips?",
        "Heat the pan well before adding a generous amount of butter or oil, and keep the heat medium-low once "
        "the eggs go in. Or skip the fold and make scrambled eggs with spinach and cheese, which cope with "
        "sticking much better.",
    ),
    chat(
        "Why do cats purr?",
        "Cats purr by rapidly twitching the muscles of their voice box as they breathe in and out. They often "
        "purr when relaxed, but also when stressed or in pain, so purring seems to be a way to calm themselves "
        "and communicate, not only a sign of happiness.",
    ),
    chat(
        "Can you recommend a first programming language?",
        "Python is a great first language: its syntax is readable, its community is huge, and it is used for "
        "everything from web apps to data science and AI. If you mainly want to build websites, JavaScript is an "
        "equally good choice.",
        "How long will it take to learn the basics?",
        "With about an hour of practice a day, most people get comfortable with variables, loops, functions and "
        "small programs in four to eight weeks. Building larger projects with confidence takes a few months of "
        "regular practice.",
    ),
    chat(
        "What is a variable in programming?",
        "A variable is a named box that holds a value. When you write `age = 12`, you put 12 in the box called "
        "`age`, and later you can read it or put a new value in.",
        system="You are a friendly tutor who explains things to beginners in plain language.",
    ),
    chat(
        "How can I tell if an avocado is ripe?",
        "Gently squeeze it in your palm: a ripe avocado yields slightly without feeling mushy. You can also flick "
        "off the small stem cap; green underneath means it is ready, brown means it may be overripe.",
        system="You are a helpful assistant for a cooking website. Keep answers short.",
    ),
    chat(
        "What is HTML?",
        "HTML (HyperText Markup Language) is the standard language for structuring web pages, using tags like "
        "<h1> for headings and <p> for paragraphs.",
        "And CSS?",
        "CSS (Cascading Style Sheets) controls how that HTML looks: colors, fonts, spacing and layout.",
        system="You are a concise assistant.",
    ),
    chat(
        "Why is any number to the power of zero equal to 1?",
        "Each time you lower the exponent by one, you divide by the base: 2^3 = 8, 2^2 = 4, 2^1 = 2. Continuing "
        "the pattern, 2^0 = 2 / 2 = 1. The same holds for any nonzero base, and it keeps the rule "
        "x^a * x^b = x^(a+b) true when a or b is 0.",
        system="You are a patient math tutor. Explain your reasoning briefly.",
    ),
    chat(
        "What's a good way to remember what I study?",
        "Test yourself instead of rereading: close the book and try to recall or explain the material, then check "
        "what you missed. Spread reviews out over days, reviewing just before you would forget, because spaced "
        "practice sticks far better than one long cram session.",
    ),
]

CONVERSATIONS: list[list[Message]] = COMPUTING + MACHINE_LEARNING + WRITING + EVERYDAY

# Open-ended eval questions (no reference answer): judged by reading, not by exact match. None of them is a
# prompt in CONVERSATIONS.
OPEN_QUESTIONS: list[str] = [
    "Give me a 1-sentence introduction of Python.",
    "What's the difference between RAM and storage?",
    "What is a software bug?",
    "Explain what an operating system is in two sentences.",
    "What is the difference between a CPU and a GPU?",
    "What is a learning rate schedule?",
    "Why do we evaluate a model on data it was not trained on?",
    "What is a transformer model?",
    "What does a tokenizer do?",
    "Rewrite this politely: Give me your notes from the meeting.",
    "Summarize in one sentence: The museum will close for renovations in June and reopen next March with a new "
    "wing for modern art and a larger cafe.",
    "Fix the grammar: He go to work by bus every days.",
    "Translate to French: Where is the library?",
    "Why do leaves change color in autumn?",
    "What is the capital of Japan?",
    "Give me two tips for staying focused while studying.",
    "What is an IP address?",
    "What is the difference between a function and a method?",
    "What is a prompt in the context of LLMs?",
    "Write a one-sentence description of a sunrise.",
]

# General prompts for the forgetting score (``general.jsonl``): everyday knowledge, writing and reasoning far
# from the training tasks. The base model's own greedy answers to them are the text on which the tuned model's
# drift is measured (KL(base || tuned) per token), so they need no reference and no teacher.
GENERAL_PROMPTS: list[str] = [
    "Tell me about the history of the printing press.",
    "How does a bicycle stay upright when it moves?",
    "Write a short story about a lighthouse keeper.",
    "What should I pack for a weekend hiking trip?",
    "Explain how vaccines train the immune system.",
    "Describe the water cycle.",
    "What are some good habits for a healthy sleep schedule?",
    "Why is the ocean salty?",
    "Write a haiku about winter.",
    "How do airplanes fly?",
    "What is the difference between weather and climate?",
    "Give me a recipe for a simple tomato soup.",
    "Explain the rules of chess in a few sentences.",
    "What causes earthquakes?",
    "How do I write a good cover letter?",
    "Describe the city of Venice.",
]
