%% The original rpc contract: ids and data as binaries or as Erlang strings.
-module(session_handler_tests).

-include_lib("eunit/include/eunit.hrl").

session_handler_test_() ->
    [contract(ets), contract(mnesia)].

contract(Backend) ->
    {setup,
     fun() -> erl_peb_tests:start(Backend, #{}) end,
     fun(_) -> erl_peb:stop() end,
     fun(_) ->
             [{lists:flatten(io_lib:format("~p: ~s", [Backend, Name])), fun() -> ok = erl_peb:clear(), Test() end}
              || {Name, Test} <- [{"start/0 is ok when the server runs", fun start/0},
                                  {"read of an unknown id is an empty binary", fun read_unknown/0},
                                  {"strings and binaries name the same session", fun strings/0},
                                  {"Unicode text is stored as UTF-8", fun unicode/0},
                                  {"destroy", fun destroy/0},
                                  {"gc removes sessions idle longer than MaxLifetime seconds", fun gc/0},
                                  {"data written by another client in another shape reads as empty",
                                   fun other_shape/0},
                                  {"bad arguments raise badarg", fun bad/0}]]
     end}.

start() ->
    ?assertEqual(ok, session_handler:start()).

read_unknown() ->
    ?assertEqual(<<>>, session_handler:read("nope")),
    ?assertEqual(<<>>, session_handler:read(<<"nope">>)),
    ?assertEqual(<<>>, session_handler:read("")).

strings() ->
    %% As mypeb sends them: lists of bytes.
    Id = "a3f1c0de",
    Data = "user|s:3:\"ada\";visits|i:2;",
    ?assertEqual(ok, session_handler:write(Id, Data)),
    ?assertEqual(list_to_binary(Data), session_handler:read(Id)),
    ?assertEqual(list_to_binary(Data), session_handler:read(list_to_binary(Id))),
    ?assertEqual(ok, session_handler:write(list_to_binary(Id), <<"v2">>)),
    ?assertEqual(<<"v2">>, session_handler:read(Id)),
    ?assertMatch({ok, <<"v2">>, _, 2}, erl_peb:get(<<"a3f1c0de">>)),
    %% Bytes above 127 in a list of bytes stay bytes.
    ?assertEqual(ok, session_handler:write("b", [16#c3, 16#a9])),
    ?assertEqual(<<16#c3, 16#a9>>, session_handler:read("b")).

unicode() ->
    ?assertEqual(ok, session_handler:write("u", "привет")),
    ?assertEqual(<<"привет"/utf8>>, session_handler:read("u")).

destroy() ->
    ok = session_handler:write("d", "x"),
    ?assertEqual(ok, session_handler:destroy("d")),
    ?assertEqual(<<>>, session_handler:read("d")),
    ?assertEqual(ok, session_handler:destroy("never")).

gc() ->
    ok = session_handler:write("old1", "x"),
    ok = session_handler:write(<<"old2">>, <<"y">>),
    erl_peb_tests:wait_past(erlang:system_time(millisecond)),
    ?assertEqual(2, session_handler:gc(0)),
    ok = session_handler:write("new", "z"),
    ?assertEqual(0, session_handler:gc(3600)),
    ?assertEqual(0, session_handler:gc("3600")),
    ?assertEqual(<<"z">>, session_handler:read("new")),
    ?assertEqual(<<>>, session_handler:read("old1")).

other_shape() ->
    {ok, _} = erl_peb:set(<<"m">>, #{<<"cookie">> => 1}, 60000),
    ?assertEqual(<<>>, session_handler:read("m")).

bad() ->
    ?assertError(badarg, session_handler:read(42)),
    ?assertError(badarg, session_handler:write("x", {tuple})),
    ?assertError(badarg, session_handler:read([-1])).
