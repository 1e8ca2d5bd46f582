%% Test vectors for the ETF codecs, made by real Erlang.
%%
%% terms/0 lists named terms covering every tag OTP 25/26 writes; handmade/0 lists bytes that OTP
%% no longer writes but still reads (PID_EXT, FLOAT_EXT, SMALL_ATOM_EXT, ...), each with the term
%% binary_to_term must give for them. make-vectors.sh runs main/1, which writes vectors.json.
%%
%% check/2,3 and check_file/1 are how the tests ask Erlang whether bytes written by a codec decode
%% (binary_to_term) to exactly the term a vector stands for. Pids, ports, references and local funs
%% are created at run time, so they differ between runs: for those the expected term is the one
%% decoded from the checked-in vector bytes (check/3's Original), never a freshly made one.
-module(etf_vectors).

-export([terms/0, handmade/0, runtime_names/0, check/2, check/3, check_all/1, check_file/1,
         main/1, tags/1, prng_bytes/2, make_fun/3, make_fun3/1]).

-define(FOREIGN, 'other@host.example').

%% ---------------------------------------------------------------------------------------------
%% The terms

terms() -> static_terms() ++ runtime_terms().

static_terms() ->
    [%% integers: SMALL_INTEGER_EXT, INTEGER_EXT, SMALL_BIG_EXT, LARGE_BIG_EXT
     {<<"int_0">>, 0},
     {<<"int_1">>, 1},
     {<<"int_255">>, 255},
     {<<"int_256">>, 256},
     {<<"int_neg1">>, -1},
     {<<"int_neg256">>, -256},
     {<<"int32_max">>, 2147483647},
     {<<"int32_min">>, -2147483648},
     {<<"big_2p31">>, 2147483648},
     {<<"big_neg_2p31_minus1">>, -2147483649},
     {<<"big_2p32">>, 4294967296},
     {<<"big_2p53_minus1">>, 9007199254740991},
     {<<"big_neg_2p53_plus1">>, -9007199254740991},
     {<<"big_2p53">>, 9007199254740992},
     {<<"big_neg_2p53">>, -9007199254740992},
     {<<"big_2p64_minus1">>, 18446744073709551615},
     {<<"big_2p64">>, 18446744073709551616},
     {<<"big_neg_2p64">>, -18446744073709551616},
     {<<"big_neg_huge">>, -(1 bsl 1000 + 7)},
     {<<"big_255_bytes">>, 1 bsl (255 * 8) - 1},
     {<<"large_big_256_bytes">>, 1 bsl (255 * 8)},
     {<<"large_big_2p2100">>, 1 bsl 2100 + 12345},
     {<<"large_big_neg_2p4000">>, -(1 bsl 4000)},
     %% floats: NEW_FLOAT_EXT (FLOAT_EXT with minor_version 0)
     {<<"float_0">>, 0.0},
     {<<"float_neg0">>, -0.0},
     {<<"float_1">>, 1.0},
     {<<"float_1_5">>, 1.5},
     {<<"float_neg_2_5">>, -2.5},
     {<<"float_0_1">>, 0.1},
     {<<"float_pi">>, 3.141592653589793},
     {<<"float_1e300">>, 1.0e300},
     {<<"float_neg_1e300">>, -1.0e300},
     {<<"float_2p53">>, 9007199254740992.0},
     {<<"float_max">>, 1.7976931348623157e308},
     {<<"float_min_normal">>, 2.2250738585072014e-308},
     {<<"float_subnormal">>, 5.0e-324},
     %% atoms: ATOM_EXT / ATOM_UTF8_EXT by default in OTP 25, SMALL_ATOM_UTF8_EXT with minor_version 2
     {<<"atom_ok">>, ok},
     {<<"atom_empty">>, ''},
     {<<"atom_true">>, true},
     {<<"atom_false">>, false},
     {<<"atom_undefined">>, undefined},
     {<<"atom_nil">>, nil},
     {<<"atom_null">>, null},
     {<<"atom_cafe">>, 'café'},
     {<<"atom_latin1_high">>, list_to_atom([255, 254, 192])},
     {<<"atom_lambda">>, 'λ'},
     {<<"atom_cjk">>, '日本語'},
     {<<"atom_emoji">>, list_to_atom([16#1F680])},
     {<<"atom_with_space_quote">>, 'it\'s a "test"'},
     {<<"atom_255">>, list_to_atom(lists:duplicate(255, $a))},
     {<<"atom_255_latin1">>, list_to_atom(lists:duplicate(255, 16#E9))},
     {<<"atom_255_cjk">>, list_to_atom(lists:duplicate(255, 16#65E5))},
     {<<"atom_255_emoji">>, list_to_atom(lists:duplicate(255, 16#1F680))},
     %% binaries: BINARY_EXT
     {<<"bin_empty">>, <<>>},
     {<<"bin_text">>, <<"hello">>},
     {<<"bin_utf8">>, <<"café ünï 日本 🚀"/utf8>>},
     {<<"bin_non_utf8">>, <<255, 0, 128, 192, 193, 245>>},
     {<<"bin_overlong_utf8">>, <<16#C0, 16#80>>},
     {<<"bin_surrogate_utf8">>, <<16#ED, 16#A0, 16#80>>},
     {<<"bin_all_bytes">>, list_to_binary(lists:seq(0, 255))},
     {<<"bin_64k_random">>, prng_bytes(65536, 1)},
     {<<"bin_100k_text">>, binary:copy(<<"The quick brown fox jumps over the lazy dog. ">>, 2300)},
     %% bitstrings: BIT_BINARY_EXT
     {<<"bits_1">>, <<1:1>>},
     {<<"bits_7">>, <<127:7>>},
     {<<"bits_12">>, <<16#ABC:12>>},
     {<<"bits_1003">>, <<(prng_bytes(125, 2))/binary, 5:3>>},
     %% strings: STRING_EXT, or LIST_EXT when a code point is over 255 or it is too long
     {<<"str_abc">>, "abc"},
     {<<"str_latin1">>, "café"},
     {<<"str_bytes">>, [0, 1, 127, 128, 255]},
     {<<"str_unicode">>, "日本"},
     {<<"str_emoji">>, [16#1F680, $!]},
     {<<"str_65535">>, lists:duplicate(65535, $a)},
     {<<"str_65536">>, lists:duplicate(65536, $b)},
     %% lists: NIL_EXT, LIST_EXT (proper and improper)
     {<<"list_nil">>, []},
     {<<"list_ints_as_string">>, [1, 2, 3]},
     {<<"list_ints_big">>, [1, 256, -1, 1 bsl 40]},
     {<<"list_mixed">>, [1, ok, <<"x">>, 2.5, "ab", {t}]},
     {<<"list_nested">>, [[1], [[2]], [], [[[]]]]},
     {<<"list_improper">>, [1 | 2]},
     {<<"list_improper_multi">>, [a, b | c]},
     {<<"list_improper_bin_tail">>, [1 | <<"tail">>]},
     {<<"list_improper_tuple_tail">>, [<<"x">> | {}]},
     {<<"list_1000">>, lists:seq(-500, 499)},
     {<<"list_of_tuples">>, [{I, <<"v">>} || I <- lists:seq(1, 50)]},
     {<<"list_deep_100">>, lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 100))},
     %% tuples: SMALL_TUPLE_EXT, LARGE_TUPLE_EXT
     {<<"tuple_empty">>, {}},
     {<<"tuple_1">>, {ok}},
     {<<"tuple_pair">>, {ok, 1}},
     {<<"tuple_nested">>, {a, {b, {c, {}}}, [{d}]}},
     {<<"tuple_255">>, list_to_tuple(lists:seq(1, 255))},
     {<<"tuple_256">>, list_to_tuple(lists:seq(1, 256))},
     {<<"tuple_300">>, list_to_tuple([{I} || I <- lists:seq(1, 300)])},
     %% maps: MAP_EXT (flat maps up to 32 keys, hash maps above)
     {<<"map_empty">>, #{}},
     {<<"map_atom_keys">>, #{a => 1, b => 2}},
     {<<"map_bin_keys">>, #{<<"x">> => 1, <<"y">> => <<"two">>}},
     {<<"map_mixed_keys">>, #{1 => a, ok => b, <<"k">> => c, {t} => d, [1] => e, 1.5 => f}},
     {<<"map_special_atom_keys">>, #{true => 1, false => 2, undefined => 3}},
     {<<"map_non_utf8_key">>, #{<<255>> => 1}},
     {<<"map_proto_key">>, #{<<"__proto__">> => #{<<"polluted">> => true}, <<"constructor">> => 1}},
     {<<"map_nested">>, #{a => #{b => #{c => [1, #{}]}}}},
     {<<"map_33_atom_keys">>, maps:from_list([{list_to_atom("k" ++ integer_to_list(I)), I}
                                              || I <- lists:seq(1, 33)])},
     {<<"map_100_bin_keys">>, maps:from_list([{integer_to_binary(I), I * I}
                                              || I <- lists:seq(1, 100)])},
     %% pids, ports, references of another node: deterministic, so made from fixed fields
     {<<"pid_foreign">>, mk_pid(?FOREIGN, 123, 4, 16#DEADBEEF)},
     {<<"pid_foreign_unicode_node">>, mk_pid('nöde@höst', 1, 0, 7)},
     {<<"port_foreign">>, mk_port(?FOREIGN, 77, 3)},
     {<<"port_v4">>, mk_port(?FOREIGN, 1 bsl 40 + 5, 3)},
     {<<"port_v4_huge">>, mk_port(?FOREIGN, 1 bsl 64 - 1, 3)},
     {<<"ref_foreign">>, mk_ref(?FOREIGN, 16#12345678, [1, 2, 3])},
     {<<"ref_foreign_1">>, mk_ref(?FOREIGN, 9, [42])},
     {<<"ref_foreign_5">>, mk_ref(?FOREIGN, 9, [1, 2, 3, 4, 16#FFFFFFFF])},
     %% export: EXPORT_EXT
     {<<"export_lists_map">>, fun lists:map/2},
     {<<"export_unicode">>, erlang:make_fun('café', 'ünï', 0)},
     %% a session as a web application keeps it
     {<<"session">>, session()}].

session() ->
    #{<<"user">> => #{<<"id">> => 1042,
                      <<"name">> => <<"Zoë Ølberg"/utf8>>,
                      <<"email">> => <<"zoe@example.com">>,
                      <<"roles">> => [admin, editor],
                      <<"verified">> => true},
      <<"cart">> => [#{<<"sku">> => <<"A-1">>, <<"qty">> => 2, <<"price">> => 19.99},
                     #{<<"sku">> => <<"B-22">>, <<"qty">> => 1, <<"price">> => 5.0}],
      <<"csrf">> => prng_bytes(32, 3),
      <<"createdAt">> => 1700000000000,
      <<"flash">> => undefined,
      <<"visits">> => 17,
      <<"prefs">> => #{theme => dark, lang => <<"pt-BR">>},
      <<"last">> => {2024, 5, 17}}.

%% Made at run time: their bytes are kept in vectors.json, with facts about them (runtime_info/1).
runtime_terms() ->
    [{<<"pid_self">>, self()},
     {<<"port_open">>, hd(erlang:ports())},
     {<<"ref_make">>, make_ref()},
     {<<"fun_no_free">>, fun() -> ok end},
     %% Called through the module so the compiler cannot fold the free variables into the code.
     {<<"fun_free_vars">>, ?MODULE:make_fun(42, <<"free">>, {tuple, [1, 2.5]})},
     {<<"fun_arity3">>, ?MODULE:make_fun3(-7)}].

make_fun(A, B, C) -> fun(X) -> {X, A, B, C} end.
make_fun3(A) -> fun(X, Y, Z) -> [X, Y, Z, A] end.

runtime_names() -> [N || {N, _} <- runtime_terms()].

%% ---------------------------------------------------------------------------------------------
%% Hand-made bytes for tags OTP reads but no longer writes, each with the term it must decode to.
%% The expected term is built another way (from the fields, or a literal), never from these bytes.

handmade() ->
    Node = atom_ext(?FOREIGN),
    [{<<"h_small_atom_ext">>, <<"SMALL_ATOM_EXT">>, <<131, 115, 3, "abc">>, abc},
     {<<"h_small_atom_ext_latin1">>, <<"SMALL_ATOM_EXT">>, <<131, 115, 4, 99, 97, 102, 233>>, 'café'},
     {<<"h_small_atom_ext_true">>, <<"SMALL_ATOM_EXT">>, <<131, 115, 4, "true">>, true},
     {<<"h_small_atom_ext_undefined">>, <<"SMALL_ATOM_EXT">>, <<131, 115, 9, "undefined">>, undefined},
     {<<"h_atom_ext_empty">>, <<"ATOM_EXT">>, <<131, 100, 0, 0>>, ''},
     {<<"h_atom_utf8_ext_short">>, <<"ATOM_UTF8_EXT">>, <<131, 118, 0, 3, "abc">>, abc},
     {<<"h_atom_utf8_ext_cjk">>, <<"ATOM_UTF8_EXT">>,
      <<131, 118, 0, 6, "日本"/utf8>>, list_to_atom([16#65E5, 16#672C])},
     {<<"h_float_ext_short">>, <<"FLOAT_EXT">>, float_ext("1.5"), 1.5},
     {<<"h_float_ext_neg_exp">>, <<"FLOAT_EXT">>, float_ext("-2.5e-03"), -0.0025},
     {<<"h_float_ext_integral">>, <<"FLOAT_EXT">>, float_ext("3.00000000000000000000e+00"), 3.0},
     {<<"h_pid_ext">>, <<"PID_EXT">>,
      <<131, 103, Node/binary, 5:32, 1:32, 3>>, mk_pid(?FOREIGN, 5, 1, 3)},
     {<<"h_port_ext">>, <<"PORT_EXT">>, <<131, 102, Node/binary, 5:32, 3>>, mk_port(?FOREIGN, 5, 3)},
     {<<"h_v4_port_ext_small_id">>, <<"V4_PORT_EXT">>,
      <<131, 120, Node/binary, 5:64, 3:32>>, mk_port(?FOREIGN, 5, 3)},
     {<<"h_reference_ext">>, <<"REFERENCE_EXT">>,
      <<131, 101, Node/binary, 5:32, 3>>, mk_ref(?FOREIGN, 3, [5])},
     {<<"h_new_reference_ext">>, <<"NEW_REFERENCE_EXT">>,
      <<131, 114, 3:16, Node/binary, 3, 5:32, 6:32, 7:32>>, mk_ref(?FOREIGN, 3, [5, 6, 7])},
     {<<"h_newer_reference_ext_2">>, <<"NEWER_REFERENCE_EXT">>,
      <<131, 90, 2:16, Node/binary, 3:32, 5:32, 6:32>>, mk_ref(?FOREIGN, 3, [5, 6])},
     {<<"h_small_big_zero">>, <<"SMALL_BIG_EXT">>, <<131, 110, 0, 0>>, 0},
     {<<"h_small_big_neg_zero">>, <<"SMALL_BIG_EXT">>, <<131, 110, 1, 1, 0>>, 0},
     {<<"h_small_big_non_minimal">>, <<"SMALL_BIG_EXT">>, <<131, 110, 4, 0, 1, 0, 0, 0>>, 1},
     {<<"h_small_big_neg_small">>, <<"SMALL_BIG_EXT">>, <<131, 110, 1, 1, 5>>, -5},
     {<<"h_large_big_small">>, <<"LARGE_BIG_EXT">>, <<131, 111, 1:32, 0, 5>>, 5},
     {<<"h_list_ext_bytes">>, <<"LIST_EXT">>, <<131, 108, 3:32, 97, 1, 97, 2, 97, 3, 106>>, [1, 2, 3]},
     {<<"h_list_ext_empty">>, <<"LIST_EXT">>, <<131, 108, 0:32, 106>>, []},
     {<<"h_list_ext_list_tail">>, <<"LIST_EXT">>,
      <<131, 108, 1:32, 97, 1, 108, 1:32, 97, 2, 106>>, [1, 2]},
     {<<"h_string_ext_empty">>, <<"STRING_EXT">>, <<131, 107, 0:16>>, []},
     {<<"h_large_tuple_small">>, <<"LARGE_TUPLE_EXT">>, <<131, 105, 2:32, 97, 1, 97, 2>>, {1, 2}},
     {<<"h_large_tuple_empty">>, <<"LARGE_TUPLE_EXT">>, <<131, 105, 0:32>>, {}},
     {<<"h_bit_binary_8">>, <<"BIT_BINARY_EXT">>, <<131, 77, 2:32, 8, 1, 2>>, <<1, 2>>},
     {<<"h_export_small_atoms">>, <<"EXPORT_EXT">>,
      <<131, 113, 115, 5, "lists", 115, 3, "map", 97, 2>>, fun lists:map/2},
     {<<"h_compressed_not_shorter">>, <<"compressed">>,
      <<131, 80, 2:32, (zlib:compress(<<97, 1>>))/binary>>, 1},
     {<<"h_compressed_level0">>, <<"compressed">>, compress_level0(<<104, 2, 97, 1, 97, 2>>), {1, 2}}].

atom_ext(A) ->
    B = atom_to_binary(A, latin1),
    <<100, (byte_size(B)):16, B/binary>>.

atom_utf8(A) ->
    B = atom_to_binary(A, utf8),
    <<118, (byte_size(B)):16, B/binary>>.

float_ext(Text) ->
    Pad = 31 - length(Text),
    <<131, 99, (list_to_binary(Text))/binary, 0:(Pad * 8)>>.

compress_level0(Inner) ->
    Z = zlib:open(),
    ok = zlib:deflateInit(Z, none),
    Out = iolist_to_binary(zlib:deflate(Z, Inner, finish)),
    ok = zlib:deflateEnd(Z),
    zlib:close(Z),
    <<131, 80, (byte_size(Inner)):32, Out/binary>>.

%% Pids, ports and references of any node can only be made from their external format.
mk_pid(Node, Id, Serial, Creation) ->
    binary_to_term(<<131, 88, (atom_utf8(Node))/binary, Id:32, Serial:32, Creation:32>>).

mk_port(Node, Id, Creation) when Id =< 16#FFFFFFFF ->
    binary_to_term(<<131, 89, (atom_utf8(Node))/binary, Id:32, Creation:32>>);
mk_port(Node, Id, Creation) ->
    binary_to_term(<<131, 120, (atom_utf8(Node))/binary, Id:64, Creation:32>>).

mk_ref(Node, Creation, Ids) ->
    binary_to_term(<<131, 90, (length(Ids)):16, (atom_utf8(Node))/binary, Creation:32,
                     (<< <<I:32>> || I <- Ids >>)/binary>>).

%% Deterministic pseudo-random bytes (an LCG, the same one test/vectors/expected.ts uses), so the
%% vectors hold bytes zlib cannot shrink without the tests needing a copy of them.
prng_bytes(N, Seed) -> prng_bytes(N, Seed, []).
prng_bytes(0, _, Acc) -> list_to_binary(lists:reverse(Acc));
prng_bytes(N, X0, Acc) ->
    X = (X0 * 1103515245 + 12345) band 16#7FFFFFFF,
    prng_bytes(N - 1, X, [(X bsr 16) band 255 | Acc]).

%% ---------------------------------------------------------------------------------------------
%% Checks: do these bytes decode to exactly the term named Name?

%% check/2,3 -> true | {false, Decoded, Expected}, each {ok, Term} or {error, Why} (Bytes that are
%% no term, or with bytes after the term; a name that is no vector; a run-time term without Original).
check(Name, Bytes) -> check(Name, Bytes, undefined).

%% Original: the vector's own bytes; needed (and used) only for the run-time terms.
check(Name, Bytes, Original) ->
    case check_all([{Name, Bytes, Original}]) of
        [] -> true;
        [{_, Decoded, Expected}] -> {false, Decoded, Expected}
    end.

%% [{Name, Bytes, Original | undefined}] -> the failures, [{Name, Decoded, Expected}].
check_all(Items) ->
    Known = maps:from_list(static_terms() ++ [{N, T} || {N, _, _, T} <- handmade()]),
    Runtime = runtime_names(),
    lists:filtermap(
      fun({Name, Bytes, Original}) ->
              Expected = expected(Name, Original, Known, Runtime),
              Decoded = decode(Bytes),
              case Expected of
                  {ok, E} when Decoded =:= {ok, E} ->
                      case exact(E) =:= exact(element(2, Decoded)) of
                          true -> false;
                          false -> {true, {Name, Decoded, Expected}}
                      end;
                  _ -> {true, {Name, Decoded, Expected}}
              end
      end, Items).

expected(Name, Original, Known, Runtime) ->
    case lists:member(Name, Runtime) of
        true when is_binary(Original) -> decode(Original);
        true -> {error, needs_original_bytes};
        false ->
            case maps:find(Name, Known) of
                {ok, T} -> {ok, T};
                error -> {error, unknown_vector}
            end
    end.

%% The whole of Bytes must be one term: binary_to_term/1 ignores bytes after it.
decode(Bytes) ->
    try binary_to_term(Bytes, [used]) of
        {T, Used} when Used =:= byte_size(Bytes) -> {ok, T};
        {T, Used} -> {error, {trailing_bytes, Used, byte_size(Bytes), T}}
    catch
        error:badarg -> {error, badarg}
    end.

%% =:= holds for 0.0 and -0.0 in OTP 25; the deterministic encoding tells them (and anything
%% else =:= might blur) apart.
exact(T) -> term_to_binary(T, [deterministic, {minor_version, 2}]).

%% A file of records <<NameLen:16, Name, Len:32, Bytes, OrigLen:32, Original>> (OrigLen 0: none)
%% -> a short report, <<"ok N">> or one line per failure.
check_file(Path) ->
    {ok, Data} = file:read_file(Path),
    Items = parse_records(Data, []),
    case check_all(Items) of
        [] -> iolist_to_binary(["ok ", integer_to_list(length(Items))]);
        Failures ->
            unicode:characters_to_binary(
              [io_lib:format("~ts: got ~0tP expected ~0tP~n", [N, D, 12, E, 12])
               || {N, D, E} <- Failures])
    end.

parse_records(<<>>, Acc) -> lists:reverse(Acc);
parse_records(<<NL:16, Name:NL/binary, L:32, Bytes:L/binary, OL:32, Orig:OL/binary, Rest/binary>>,
              Acc) ->
    O = case OL of 0 -> undefined; _ -> Orig end,
    parse_records(Rest, [{Name, Bytes, O} | Acc]).

%% ---------------------------------------------------------------------------------------------
%% Writing vectors.json

encodings() ->
    [{<<"default">>, []},
     {<<"minor0">>, [{minor_version, 0}]},
     {<<"minor1">>, [{minor_version, 1}]},
     {<<"minor2">>, [{minor_version, 2}]},
     {<<"compressed">>, [compressed]}].

main([Out]) ->
    try
        ok = file:write_file(Out, json()),
        io:format("wrote ~s~n", [Out]),
        erlang:halt(0)
    catch C:E:St ->
        io:format(standard_error, "make-vectors failed: ~p:~p~n~p~n", [C, E, St]),
        erlang:halt(1)
    end.

json() ->
    Terms = terms(),
    Runtime = runtime_names(),
    Vectors = [vector_json(N, T, lists:member(N, Runtime)) || {N, T} <- Terms],
    Handmade = [handmade_json(H) || H <- handmade()],
    %% Every vector must come back from its own bytes (and the run-time ones from theirs).
    [] = check_all([{N, term_to_binary(T, O), term_to_binary(T)}
                    || {N, T} <- Terms, {_, O} <- encodings()]),
    [] = check_all([{N, B, undefined} || {N, _, B, _} <- handmade()]),
    Covered = lists:usort(lists:append([tags(term_to_binary(T, O)) || {_, T} <- Terms,
                                                                        {_, O} <- encodings()])
                          ++ lists:append([tags(B) || {_, _, B, _} <- handmade()])),
    ["{\n",
     "  \"about\": ", str(<<"Made by test/vectors/make-vectors.sh from test/vectors/etf_vectors.erl; do not edit. "
                            "Each vector holds term_to_binary(T) (default), with {minor_version,0|1|2} and with "
                            "[compressed]; an encoding that is null is byte for byte the same as default. "
                            "handmade holds bytes for tags OTP reads but no longer writes.">>), ",\n",
     "  \"otp_release\": ", str(list_to_binary(erlang:system_info(otp_release))), ",\n",
     "  \"erts_version\": ", str(list_to_binary(erlang:system_info(version))), ",\n",
     "  \"node\": ", str(atom_to_binary(node(), utf8)), ",\n",
     "  \"creation\": ", integer_to_list(erlang:system_info(creation)), ",\n",
     "  \"tags_covered\": [", lists:join(", ", [str(atom_to_binary(T)) || T <- Covered]), "],\n",
     "  \"vectors\": [\n", lists:join(",\n", Vectors), "\n  ],\n",
     "  \"handmade\": [\n", lists:join(",\n", Handmade), "\n  ]\n",
     "}\n"].

vector_json(Name, Term, IsRuntime) ->
    Default = term_to_binary(Term),
    Encs = [{E, term_to_binary(Term, O)} || {E, O} <- encodings()],
    %% The compressed form holds the same bytes as the default one, when it is compressed at all.
    case term_to_binary(Term, [compressed]) of
        <<131, 80, Size:32, Z/binary>> ->
            <<131, Inner/binary>> = Default,
            Inner = zlib:uncompress(Z),
            Size = byte_size(Inner);
        Default -> ok
    end,
    ["    {\"name\": ", str(Name),
     ", \"erlang\": ", str(text(Term)),
     case IsRuntime of
         true -> [", \"runtime\": ", runtime_info(Term)];
         false -> []
     end,
     ",\n      \"tags\": {",
     lists:join(", ", [[str(E), ": [", lists:join(", ", [str(atom_to_binary(T)) || T <- tags(B)]), "]"]
                       || {E, B} <- Encs]),
     "},\n      \"encodings\": {",
     lists:join(",\n        ", [[str(E), ": ", case E =/= <<"default">> andalso B =:= Default of
                                                   true -> "null";
                                                   false -> str(hex(B))
                                               end] || {E, B} <- Encs]),
     "}}"].

handmade_json({Name, Tag, Bytes, Term}) ->
    ["    {\"name\": ", str(Name), ", \"tag\": ", str(Tag), ", \"erlang\": ", str(text(Term)),
     ", \"hex\": ", str(hex(Bytes)), "}"].

%% Facts about a run-time term, from Erlang's own functions (not from parsing its bytes).
runtime_info(P) when is_pid(P) ->
    obj([{<<"kind">>, str(<<"pid">>)}, {<<"text">>, str(list_to_binary(pid_to_list(P)))},
         {<<"node">>, str(atom_to_binary(node(P)))}]);
runtime_info(P) when is_port(P) ->
    obj([{<<"kind">>, str(<<"port">>)}, {<<"text">>, str(list_to_binary(port_to_list(P)))},
         {<<"node">>, str(atom_to_binary(node(P)))}]);
runtime_info(R) when is_reference(R) ->
    obj([{<<"kind">>, str(<<"ref">>)}, {<<"text">>, str(list_to_binary(ref_to_list(R)))},
         {<<"node">>, str(atom_to_binary(node(R)))}]);
runtime_info(F) when is_function(F) ->
    Info = erlang:fun_info(F),
    {module, M} = lists:keyfind(module, 1, Info),
    {arity, A} = lists:keyfind(arity, 1, Info),
    {new_index, I} = lists:keyfind(new_index, 1, Info),
    {env, Env} = lists:keyfind(env, 1, Info),
    {pid, Pid} = lists:keyfind(pid, 1, Info),
    obj([{<<"kind">>, str(<<"fun">>)}, {<<"module">>, str(atom_to_binary(M))},
         {<<"arity">>, integer_to_list(A)}, {<<"index">>, integer_to_list(I)},
         {<<"numfree">>, integer_to_list(length(Env))},
         {<<"pid">>, str(list_to_binary(pid_to_list(Pid)))}]).

obj(KVs) -> ["{", lists:join(", ", [[str(K), ": ", V] || {K, V} <- KVs]), "}"].

text(T) ->
    S = unicode:characters_to_binary(io_lib:format("~0tP", [T, 6])),
    case string:length(S) > 200 of
        true -> <<(unicode:characters_to_binary(string:slice(S, 0, 200)))/binary, "...">>;
        false -> S
    end.

hex(B) -> << <<(hexdigit(N))>> || <<N:4>> <= B >>.
hexdigit(N) when N < 10 -> $0 + N;
hexdigit(N) -> $a + N - 10.

str(B) -> [$", [esc(C) || C <- unicode:characters_to_list(B)], $"].
esc($") -> "\\\"";
esc($\\) -> "\\\\";
esc(C) when C < 32 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> unicode:characters_to_binary([C]).

%% ---------------------------------------------------------------------------------------------
%% The tags an encoded term uses (to show the vectors cover every tag).

tags(<<131, 80, _:32, Z/binary>>) -> lists:usort(['COMPRESSED' | tags(<<131, (zlib:uncompress(Z))/binary>>)]);
tags(<<131, B/binary>>) ->
    {<<>>, Acc} = walk(B, []),
    lists:usort(Acc).

walk(<<97, _, R/binary>>, A) -> {R, ['SMALL_INTEGER_EXT' | A]};
walk(<<98, _:32, R/binary>>, A) -> {R, ['INTEGER_EXT' | A]};
walk(<<99, _:31/binary, R/binary>>, A) -> {R, ['FLOAT_EXT' | A]};
walk(<<70, _:8/binary, R/binary>>, A) -> {R, ['NEW_FLOAT_EXT' | A]};
walk(<<110, N, _, _:N/binary, R/binary>>, A) -> {R, ['SMALL_BIG_EXT' | A]};
walk(<<111, N:32, _, _:N/binary, R/binary>>, A) -> {R, ['LARGE_BIG_EXT' | A]};
walk(<<100, N:16, _:N/binary, R/binary>>, A) -> {R, ['ATOM_EXT' | A]};
walk(<<115, N, _:N/binary, R/binary>>, A) -> {R, ['SMALL_ATOM_EXT' | A]};
walk(<<118, N:16, _:N/binary, R/binary>>, A) -> {R, ['ATOM_UTF8_EXT' | A]};
walk(<<119, N, _:N/binary, R/binary>>, A) -> {R, ['SMALL_ATOM_UTF8_EXT' | A]};
walk(<<109, N:32, _:N/binary, R/binary>>, A) -> {R, ['BINARY_EXT' | A]};
walk(<<77, N:32, _, _:N/binary, R/binary>>, A) -> {R, ['BIT_BINARY_EXT' | A]};
walk(<<107, N:16, _:N/binary, R/binary>>, A) -> {R, ['STRING_EXT' | A]};
walk(<<106, R/binary>>, A) -> {R, ['NIL_EXT' | A]};
walk(<<108, N:32, R/binary>>, A) -> walk_n(N + 1, R, ['LIST_EXT' | A]);
walk(<<104, N, R/binary>>, A) -> walk_n(N, R, ['SMALL_TUPLE_EXT' | A]);
walk(<<105, N:32, R/binary>>, A) -> walk_n(N, R, ['LARGE_TUPLE_EXT' | A]);
walk(<<116, N:32, R/binary>>, A) -> walk_n(2 * N, R, ['MAP_EXT' | A]);
walk(<<103, R/binary>>, A) -> skip(walk(R, ['PID_EXT' | A]), 9);
walk(<<88, R/binary>>, A) -> skip(walk(R, ['NEW_PID_EXT' | A]), 12);
walk(<<102, R/binary>>, A) -> skip(walk(R, ['PORT_EXT' | A]), 5);
walk(<<89, R/binary>>, A) -> skip(walk(R, ['NEW_PORT_EXT' | A]), 8);
walk(<<120, R/binary>>, A) -> skip(walk(R, ['V4_PORT_EXT' | A]), 12);
walk(<<101, R/binary>>, A) -> skip(walk(R, ['REFERENCE_EXT' | A]), 5);
walk(<<114, N:16, R/binary>>, A) -> skip(walk(R, ['NEW_REFERENCE_EXT' | A]), 1 + 4 * N);
walk(<<90, N:16, R/binary>>, A) -> skip(walk(R, ['NEWER_REFERENCE_EXT' | A]), 4 + 4 * N);
walk(<<112, Size:32, R/binary>>, A) -> skip({R, ['NEW_FUN_EXT' | A]}, Size - 4);
walk(<<113, R/binary>>, A) -> walk_n(3, R, ['EXPORT_EXT' | A]).

walk_n(0, R, A) -> {R, A};
walk_n(N, R, A) ->
    {R1, A1} = walk(R, A),
    walk_n(N - 1, R1, A1).

skip({R, A}, N) ->
    <<_:N/binary, R1/binary>> = R,
    {R1, A}.
