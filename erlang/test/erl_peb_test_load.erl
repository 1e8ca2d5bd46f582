%% Load and checks for the multi-node tests (test/server/cluster.test.ts), run inside the nodes.
%%
%% A load is a coordinator registered on the node that runs it, with writer processes that write
%% sessions round-robin through the session servers of the target nodes. Only the writes a
%% server acknowledged are recorded, with their data and the node that acknowledged them; the
%% checks then read those sessions from a node's own copy.
-module(erl_peb_test_load).

-export([start/3, acked/1, stop/1, finish/1, missing/2, check_local/1]).
-export([write_n/3, missing_n/2, hammer/4]).

-define(TTL, 3600000).

%% --- a write load ----------------------------------------------------------------------------

-spec start(atom(), [node()], pos_integer()) -> ok.
start(Name, Targets, Writers) ->
    Self = self(),
    _ = spawn(fun() ->
                      true = register(Name, self()),
                      Tab = ets:new(acked, [public, set]),
                      Pids = [spawn_link(fun() -> writer(Tab, Targets, W, 0) end) || W <- lists:seq(1, Writers)],
                      Self ! {started, Name},
                      coordinator(Tab, Pids)
              end),
    receive {started, Name} -> ok end.

coordinator(Tab, Pids) ->
    receive
        {acked, From} ->
            From ! {acked, self(), by_target(Tab)},
            coordinator(Tab, Pids);
        {stop, From} ->
            [begin P ! {stop, self()}, receive {stopped, P} -> ok end end || P <- Pids],
            From ! {stopped, self(), by_target(Tab)},
            coordinator(Tab, []);
        {entries, From} ->
            From ! {entries, self(), [{Id, Data} || {Id, Data, _} <- ets:tab2list(Tab)]},
            coordinator(Tab, Pids);
        {finish, From} ->
            From ! {finished, self()}
    end.

by_target(Tab) ->
    lists:foldl(fun({_, _, Node}, Acc) -> maps:update_with(Node, fun(N) -> N + 1 end, 1, Acc) end,
                #{}, ets:tab2list(Tab)).

writer(Tab, Targets, W, I) ->
    receive
        {stop, From} -> From ! {stopped, self()}
    after 0 ->
        Target = lists:nth(1 + I rem length(Targets), Targets),
        Id = iolist_to_binary([atom_to_binary(node()), "/", integer_to_binary(W), "/", integer_to_binary(I)]),
        Data = #{<<"writer">> => W, <<"n">> => I},
        try gen_server:call({erl_peb_sessions, Target}, {set, Id, Data, ?TTL}, 10000) of
            {ok, _} -> ets:insert(Tab, {Id, Data, Target});
            _ -> ok
        catch
            %% Not acknowledged (the target is down, or did not answer in time): not recorded.
            exit:_ -> timer:sleep(5)
        end,
        writer(Tab, Targets, W, I + 1)
    end.

ask(Name, Msg, Reply) ->
    Pid = whereis(Name),
    Pid ! {Msg, self()},
    receive {Reply, Pid, Value} -> Value after 60000 -> erlang:error({no_reply, Name}) end.

%% Acknowledged writes so far, by the node whose server acknowledged them.
-spec acked(atom()) -> #{node() => non_neg_integer()}.
acked(Name) -> ask(Name, acked, acked).

%% Stops the writers; the acknowledged writes, by node.
-spec stop(atom()) -> #{node() => non_neg_integer()}.
stop(Name) -> ask(Name, stop, stopped).

-spec finish(atom()) -> ok.
finish(Name) ->
    Pid = whereis(Name),
    Pid ! {finish, self()},
    receive {finished, Pid} -> ok end.

%% How many of the writes this node's load had acknowledged are not in Node's own copy, as
%% written.
-spec missing(atom(), node()) -> non_neg_integer().
missing(Name, Node) ->
    Entries = ask(Name, entries, entries),
    erpc:call(Node, ?MODULE, check_local, [Entries], 120000).

-spec check_local([{binary(), term()}]) -> non_neg_integer().
check_local(Entries) ->
    length([Id || {Id, Data} <- Entries, not local_has(Id, Data)]).

local_has(Id, Data) ->
    case erl_peb:get(Id) of
        {ok, Data, _, _} -> true;
        _ -> false
    end.

%% --- a fixed set of sessions -----------------------------------------------------------------

%% Writes sessions <<Prefix, "-", N>> for N in 1..Count from Procs processes through the local
%% server; returns how many were acknowledged.
-spec write_n(binary(), pos_integer(), pos_integer()) -> non_neg_integer().
write_n(Prefix, Count, Procs) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Acked = length([ok || N <- lists:seq(P, Count, Procs),
                                                     {ok, _} <- [erl_peb:set(nth_id(Prefix, N), nth_data(N), ?TTL)]]),
                               Self ! {written, self(), Acked}
                       end) || P <- lists:seq(1, Procs)],
    lists:sum([receive {written, Pid, A} -> A end || Pid <- Pids]).

%% How many of those sessions this node's copy does not hold, as written.
-spec missing_n(binary(), pos_integer()) -> non_neg_integer().
missing_n(Prefix, Count) ->
    length([N || N <- lists:seq(1, Count), not local_has(nth_id(Prefix, N), nth_data(N))]).

nth_id(Prefix, N) -> <<Prefix/binary, "-", (integer_to_binary(N))/binary>>.

nth_data(N) -> #{<<"n">> => N, <<"payload">> => binary:copy(<<"x">>, 100)}.

%% --- one counter, many clients ---------------------------------------------------------------

%% Clients processes spread over Nodes, each incrementing the counter session Id Rounds times
%% through its own node's server: lock, read, write (a plain write, no compare-and-set: only the
%% lock keeps updates from being lost), unlock. Returns the counter's final value.
-spec hammer(binary(), [node()], pos_integer(), pos_integer()) -> integer().
hammer(Id, Nodes, Clients, Rounds) ->
    {ok, _} = erl_peb:set(Id, 0, ?TTL),
    Self = self(),
    Pids = [spawn_link(lists:nth(1 + C rem length(Nodes), Nodes),
                       fun() ->
                               [{ok, ok} = erl_peb:with_lock(Id, 30000, 60000, fun() -> increment(Id) end)
                                || _ <- lists:seq(1, Rounds)],
                               Self ! {hammered, self()}
                       end) || C <- lists:seq(1, Clients)],
    [receive {hammered, P} -> ok end || P <- Pids],
    {ok, Value, _, _} = erl_peb:get(Id),
    Value.

increment(Id) ->
    {ok, N, _, _} = erl_peb:get(Id),
    {ok, _} = erl_peb:set(Id, N + 1, ?TTL),
    ok.
