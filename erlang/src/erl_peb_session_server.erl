%% The session server: a gen_server registered under `server_name' (default `erl_peb_sessions')
%% that owns the session store. Every write goes through it; reads by Erlang code go straight to
%% the table (erl_peb:get/1), and the `{get, Id}' call answers from the table without waiting for
%% any write in progress. The request and reply terms are documented in erlang/README.md.
%%
%% It also keeps what a table cannot: the lock leases it granted (a monitor on each holder and a
%% timer for each lease), the callers waiting for a lease (a FIFO queue per id, answered by the
%% server when the lease is theirs or their wait is over, so waiting blocks no one), and the
%% periodic expiry sweep.
-module(erl_peb_session_server).

-behaviour(gen_server).

-export([start_link/1, store/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, code_change/3]).

-define(STORE_KEY, {erl_peb, store}).
%% The longest delay an Erlang timer takes, in milliseconds.
-define(MAX_TIMER, 4294967295).
-define(MAX_EVENTS, 20).

-record(waiter, {
    from :: gen_server:from(),
    holder :: pid(),
    token :: binary(),
    lease_ms :: pos_integer(),
    deadline :: integer(),            %% monotonic ms
    timer :: reference() | undefined  %% fires when the wait is over
}).

-record(lease, {token :: binary(), holder :: pid(), mref :: reference(), timer :: reference()}).

-record(state, {
    config :: erl_peb_config:config(),
    mod :: module(),
    ref :: erl_peb_store:ref(),
    concurrency :: serial | keyed,
    workers = {} :: tuple(),
    maint :: pid() | undefined,       %% worker for clear (keyed backends)
    pending = #{} :: #{reference() => fun((term(), #state{}) -> #state{})},
    leases = #{} :: #{binary() => #lease{}},
    monitors = #{} :: #{reference() => {binary(), binary()}},
    waiters = #{} :: #{binary() => queue:queue(#waiter{})},
    trying = #{} :: #{binary() => binary()},                 %% id => token of the attempt in flight
    freed = #{} :: #{binary() => true},                      %% ids released while an attempt was in flight
    retries = #{} :: #{binary() => {integer(), reference()}}, %% id => {held until, timer}
    sweeper :: pid() | undefined,
    last_sweep = #{} :: map(),
    events = [] :: [map()]
}).

-spec start_link(erl_peb_config:config()) -> {ok, pid()} | ignore | {error, term()}.
start_link(#{server_name := Name} = Config) ->
    gen_server:start_link({local, Name}, ?MODULE, Config, []).

%% The backend and its handle, for reading straight from the table.
-spec store() -> {module(), erl_peb_store:ref()}.
store() ->
    case persistent_term:get(?STORE_KEY, undefined) of
        undefined -> erlang:error(not_running);
        Store -> Store
    end.

%% --- gen_server ------------------------------------------------------------------------------

-spec init(erl_peb_config:config()) -> {ok, #state{}} | {stop, term()}.
init(#{backend := Backend, workers := NWorkers} = Config) ->
    process_flag(trap_exit, true),
    Mod = erl_peb_store:module(Backend),
    case Mod:init(Config) of
        {ok, Ref} ->
            persistent_term:put(?STORE_KEY, {Mod, Ref}),
            Concurrency = Mod:concurrency(),
            S = case Concurrency of
                    serial ->
                        #state{config = Config, mod = Mod, ref = Ref, concurrency = serial};
                    keyed ->
                        Workers = list_to_tuple([erl_peb_worker:start_link() || _ <- lists:seq(1, NWorkers)]),
                        #state{config = Config, mod = Mod, ref = Ref, concurrency = keyed,
                               workers = Workers, maint = erl_peb_worker:start_link()}
                end,
            logger:info("erl_peb: session server started on ~p (~p)", [node(), Backend]),
            {ok, schedule_sweep(S)};
        {error, Reason} ->
            {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}} | {noreply, #state{}}.
handle_call(Request, From, S) ->
    try
        request(Request, From, S)
    catch
        throw:badarg ->
            {reply, {error, badarg}, S};
        Class:Reason:Stack ->
            logger:error("erl_peb: request failed: ~p:~p ~p", [Class, Reason, Stack]),
            {reply, {error, {Class, Reason}}, S}
    end.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({exec_done, Tag, Result}, #state{pending = P} = S) ->
    case maps:take(Tag, P) of
        {Cont, P1} -> {noreply, Cont(Result, S#state{pending = P1})};
        error -> {noreply, S}
    end;
handle_info({timeout, _TRef, {lock_wait, Id, Token}}, S) ->
    {noreply, wait_over(Id, Token, S)};
handle_info({timeout, TRef, {lock_retry, Id}}, #state{retries = R} = S) ->
    case maps:find(Id, R) of
        {ok, {_, TRef}} -> {noreply, wake(Id, S#state{retries = maps:remove(Id, R)})};
        _ -> {noreply, S}
    end;
handle_info({timeout, _TRef, {lease, Id, Token}}, #state{leases = L} = S) ->
    case maps:find(Id, L) of
        {ok, #lease{token = Token}} -> {noreply, release(Id, Token, none, S)};
        _ -> {noreply, S}
    end;
handle_info({'DOWN', MRef, process, _Pid, _Reason}, #state{monitors = M} = S) ->
    case maps:take(MRef, M) of
        {{Id, Token}, M1} -> {noreply, release(Id, Token, none, S#state{monitors = M1})};
        error -> {noreply, S}
    end;
handle_info(sweep, #state{sweeper = undefined, mod = Mod, ref = Ref} = S) ->
    case Mod:sweeps_here(Ref) of
        true -> {noreply, start_sweep(S)};
        false -> {noreply, schedule_sweep(S)}
    end;
handle_info(sweep, S) ->
    {noreply, S};
handle_info({sweep_done, Pid, Removed, Ms}, #state{sweeper = Pid} = S) ->
    Last = #{removed => Removed, duration_ms => Ms, finished_at => now_ms()},
    {noreply, schedule_sweep(S#state{sweeper = undefined, last_sweep = Last})};
handle_info({'EXIT', Pid, Reason}, #state{sweeper = Pid} = S) ->
    Reason =:= normal orelse logger:warning("erl_peb: the expiry sweep stopped: ~p", [Reason]),
    {noreply, schedule_sweep(S#state{sweeper = undefined})};
handle_info({'EXIT', _Pid, normal}, S) ->
    {noreply, S};
handle_info({'EXIT', Pid, Reason}, S) ->
    %% A worker or the backend's own helper: the server restarts with fresh ones.
    {stop, {linked_process_exited, Pid, Reason}, S};
handle_info(Msg, #state{mod = Mod, ref = Ref} = S) ->
    case Mod:handle_info(Msg, Ref) of
        {lock_free, Id, Token} ->
            S1 = drop_lease(Id, Token, S),
            case maps:is_key(Id, S1#state.trying) of
                %% The attempt in flight may have read the lease before this release: it must
                %% not then wait for a release that has already happened.
                true -> {noreply, S1#state{freed = (S1#state.freed)#{Id => true}}};
                false -> {noreply, wake(Id, S1)}
            end;
        {lock_taken, Id, Token} ->
            %% A lease of ours replaced after it expired: forget it.
            case maps:find(Id, S#state.leases) of
                {ok, #lease{token = T}} when T =/= Token -> {noreply, drop_lease(Id, T, S)};
                _ -> {noreply, S}
            end;
        {inconsistent_database, Context, Node} ->
            logger:error("erl_peb: Mnesia reports an inconsistent database (~p) with node ~p: "
                         "the two sides of a partition may hold different sessions; "
                         "see erlang/README.md, \"Partitions\"", [Context, Node]),
            Event = #{event => inconsistent_database, context => Context, node => Node, at => now_ms()},
            {noreply, S#state{events = lists:sublist([Event | S#state.events], ?MAX_EVENTS)}};
        {node_down, Node} ->
            logger:notice("erl_peb: cluster node ~p is down", [Node]),
            {noreply, S};
        {node_up, Node} when Node =/= node() ->
            logger:notice("erl_peb: cluster node ~p is up", [Node]),
            {noreply, S};
        {node_up, _} ->
            {noreply, S};
        stopped ->
            {stop, storage_stopped, S};
        ignore ->
            {noreply, S}
    end.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{mod = Mod, ref = Ref, workers = Workers, maint = Maint, sweeper = Sweeper}) ->
    [exit(P, shutdown) || P <- [Maint, Sweeper | tuple_to_list(Workers)], is_pid(P)],
    _ = persistent_term:erase(?STORE_KEY),
    Mod:terminate(Ref).

-spec code_change(term(), #state{}, term()) -> {ok, #state{}}.
code_change(_OldVsn, S, _Extra) ->
    {ok, S}.

%% --- requests --------------------------------------------------------------------------------

request({get, Id}, _From, #state{mod = Mod, ref = Ref} = S) when is_binary(Id) ->
    {reply, erl_peb_store:read(Mod, Ref, Id, now_ms()), S};
request({set, Id, Data, Ttl}, From, S) when is_binary(Id) ->
    put(Id, Data, Ttl, any, From, S);
request({set, Id, Data, Ttl, Expected}, From, S)
  when is_binary(Id), is_integer(Expected), Expected >= 0 ->
    put(Id, Data, Ttl, Expected, From, S);
request({touch, Id, Ttl}, From, #state{mod = Mod, ref = Ref} = S) when is_binary(Id) ->
    Now = now_ms(),
    Exp = expires_at(Ttl, Now, S),
    write(Id, fun() -> Mod:touch(Ref, Id, Exp, Now) end, From, S);
request({destroy, Id}, From, #state{mod = Mod, ref = Ref} = S) when is_binary(Id) ->
    write(Id, fun() -> Mod:delete(Ref, Id) end, From, S);
request({Kind, Cursor, Limit}, _From, #state{mod = Mod, ref = Ref, config = #{max_page := Max}} = S)
  when (Kind =:= ids orelse Kind =:= all), (Cursor =:= first orelse is_binary(Cursor)),
       is_integer(Limit), Limit > 0 ->
    {reply, erl_peb_store:page(Mod, Ref, Kind, Cursor, Limit, now_ms(), Max), S};
request(count, From, #state{mod = Mod, ref = Ref} = S) ->
    reader(From, fun() -> {ok, Mod:count(Ref, now_ms())} end),
    {noreply, S};
request(clear, From, #state{mod = Mod, ref = Ref} = S) ->
    maintenance(fun() -> Mod:clear(Ref) end, From, S);
request(sweep, From, S) ->
    purge({expired, now_ms()}, From, S);
request({gc, MaxAgeMs}, From, S) when is_integer(MaxAgeMs), MaxAgeMs >= 0 ->
    purge({idle, now_ms() - MaxAgeMs}, From, S);
request({lock, Id, LeaseMs, WaitMs}, From, S)
  when is_binary(Id), is_integer(LeaseMs), LeaseMs > 0, LeaseMs =< ?MAX_TIMER,
       is_integer(WaitMs), WaitMs >= 0, WaitMs =< ?MAX_TIMER ->
    {noreply, lock(Id, LeaseMs, WaitMs, From, S)};
request({unlock, Id, Token}, From, S) when is_binary(Id), is_binary(Token) ->
    {noreply, release(Id, Token, From, S)};
request(status, From, S) ->
    status(From, S),
    {noreply, S};
request({join, Node}, _From, #state{mod = Mod, ref = Ref, config = Config} = S) when is_atom(Node) ->
    case Mod:join(Ref, Node, Config) of
        {ok, Ref1} ->
            persistent_term:put(?STORE_KEY, {Mod, Ref1}),
            flush_own_storage_down(),
            {reply, ok, S#state{ref = Ref1}};
        {error, _} = Error ->
            {reply, Error, S}
    end;
request({'$erl_peb_delete_matching', Ids, Pred}, _From, #state{mod = Mod, ref = Ref} = S)
  when is_list(Ids) ->
    {reply, erl_peb_worker:run(fun() -> Mod:delete_matching(Ref, Ids, Pred) end), S};
request(Request, _From, S) when is_tuple(Request), tuple_size(Request) > 0 ->
    case lists:member(element(1, Request),
                      [get, set, touch, destroy, ids, all, gc, lock, unlock, join]) of
        true -> throw(badarg);
        false -> {reply, {error, unknown_request}, S}
    end;
request(_Request, _From, S) ->
    {reply, {error, unknown_request}, S}.

put(Id, Data, Ttl, Expected, From, #state{mod = Mod, ref = Ref} = S) ->
    Now = now_ms(),
    Exp = expires_at(Ttl, Now, S),
    write(Id, fun() -> Mod:put(Ref, Id, Data, Exp, Now, Expected) end, From, S).

expires_at(infinity, _Now, _S) -> infinity;
expires_at(default, Now, #state{config = #{default_ttl := Ttl}}) -> Now + Ttl;
expires_at(Ttl, Now, _S) when is_integer(Ttl), Ttl > 0 -> Now + Ttl;
expires_at(_, _, _) -> throw(badarg).

%% A write: in the server for a serial backend, else in the worker for this id, which answers
%% the caller itself.
write(_Id, Fun, _From, #state{concurrency = serial} = S) ->
    {reply, erl_peb_worker:run(Fun), S};
write(Id, Fun, From, S) ->
    worker(Id, S) ! {reply, From, Fun},
    {noreply, S}.

maintenance(Fun, _From, #state{concurrency = serial} = S) ->
    {reply, erl_peb_worker:run(Fun), S};
maintenance(Fun, From, #state{maint = Maint} = S) ->
    Maint ! {reply, From, Fun},
    {noreply, S}.

worker(Id, #state{workers = W}) ->
    element(1 + erlang:phash2(Id, tuple_size(W)), W).

%% Work that only reads (or, for a purge, deletes through the writer) runs in a process of its
%% own which answers the caller: a count over a large table does not hold the server up.
reader(From, Fun) ->
    _ = spawn(fun() -> gen_server:reply(From, erl_peb_worker:run(Fun)) end),
    ok.

purge(Pred, From, #state{mod = Mod, ref = Ref, concurrency = C, config = #{sweep_batch := B}} = S) ->
    Server = self(),
    reader(From, fun() -> {ok, erl_peb_sweeper:run(Server, Mod, Ref, C, Pred, B)} end),
    {noreply, S}.

status(From, #state{mod = Mod, ref = Ref, config = Config} = S) ->
    #{backend := Backend, server_name := Name, default_ttl := Ttl, sweep_interval := Interval} = Config,
    Waiting = maps:fold(fun(_, Q, N) -> N + queue:len(Q) end, 0, S#state.waiters),
    Base = #{node => node(), backend => Backend, server => Name, default_ttl => Ttl,
             sweep_interval => Interval, last_sweep => S#state.last_sweep,
             leases => maps:size(S#state.leases), waiting => Waiting,
             inconsistent => S#state.events},
    reader(From, fun() ->
        Now = now_ms(),
        {ok, maps:merge(Mod:status(Ref), Base#{sessions => Mod:count(Ref, Now), stored => Mod:stored(Ref)})}
    end).

flush_own_storage_down() ->
    Self = node(),
    receive
        {mnesia_system_event, {mnesia_down, Self}} -> flush_own_storage_down()
    after 0 ->
        ok
    end.

%% --- sweep -----------------------------------------------------------------------------------

schedule_sweep(#state{config = #{sweep_interval := infinity}} = S) ->
    S;
schedule_sweep(#state{config = #{sweep_interval := Interval}} = S) ->
    erlang:send_after(Interval, self(), sweep),
    S.

start_sweep(#state{mod = Mod, ref = Ref, concurrency = C, config = #{sweep_batch := B}} = S) ->
    Server = self(),
    Pid = proc_lib:spawn_link(fun() ->
        T0 = erlang:monotonic_time(millisecond),
        Removed = erl_peb_sweeper:run(Server, Mod, Ref, C, {expired, now_ms()}, B),
        Server ! {sweep_done, self(), Removed, erlang:monotonic_time(millisecond) - T0}
    end),
    S#state{sweeper = Pid}.

%% --- lock leases -----------------------------------------------------------------------------

lock(Id, LeaseMs, WaitMs, {Holder, _} = From, S) ->
    Token = crypto:strong_rand_bytes(16),
    Timer = case WaitMs of
                0 -> undefined;
                _ -> erlang:start_timer(WaitMs, self(), {lock_wait, Id, Token})
            end,
    W = #waiter{from = From, holder = Holder, token = Token, lease_ms = LeaseMs,
                deadline = erlang:monotonic_time(millisecond) + WaitMs, timer = Timer},
    Busy = maps:is_key(Id, S#state.trying) orelse maps:is_key(Id, S#state.waiters),
    if
        not Busy -> attempt(Id, W, S);
        Timer =:= undefined -> gen_server:reply(From, timeout), S;
        true -> enqueue(Id, W, rear, S)
    end.

attempt(Id, #waiter{token = Token, holder = Holder, lease_ms = LeaseMs} = W,
        #state{mod = Mod, ref = Ref, trying = T} = S) ->
    Now = now_ms(),
    exec(Id, fun() -> Mod:lock_acquire(Ref, Id, Token, Holder, Now + LeaseMs, Now) end,
         fun(Result, S1) -> acquired(Id, W, Result, S1) end,
         S#state{trying = T#{Id => Token}}).

acquired(Id, W, Result, #state{trying = T, freed = F} = S0) ->
    S = S0#state{trying = maps:remove(Id, T), freed = maps:remove(Id, F)},
    Freed = maps:is_key(Id, F),
    case Result of
        ok ->
            grant(Id, W, S);
        {held, Until} ->
            S1 = case W#waiter.timer =/= undefined
                     andalso erlang:monotonic_time(millisecond) < W#waiter.deadline of
                     true ->
                         enqueue(Id, W, front, S);
                     false ->
                         done_waiting(W, timeout),
                         S
                 end,
            case maps:is_key(Id, S1#state.waiters) of
                true when Freed -> wake(Id, S1);
                true -> retry_at(Id, Until, S1);
                false -> S1
            end;
        Error ->
            done_waiting(W, Error),
            wake(Id, S)
    end.

grant(Id, #waiter{holder = Holder, token = Token, lease_ms = LeaseMs} = W, S0) ->
    S = case maps:find(Id, S0#state.leases) of
            {ok, #lease{token = Old}} -> drop_lease(Id, Old, S0);
            error -> S0
        end,
    MRef = monitor_holder(Holder),
    TRef = erlang:start_timer(LeaseMs, self(), {lease, Id, Token}),
    done_waiting(W, {ok, Token}),
    S#state{leases = (S#state.leases)#{Id => #lease{token = Token, holder = Holder, mref = MRef, timer = TRef}},
            monitors = (S#state.monitors)#{MRef => {Id, Token}}}.

%% A peer that cannot be monitored still gets its lease, which then ends by unlock or by time;
%% the reference stands in for the monitor and never fires.
monitor_holder(Holder) ->
    try
        erlang:monitor(process, Holder)
    catch
        error:badarg ->
            logger:warning("erl_peb: cannot monitor lock holder ~p; its lease ends by time only", [Holder]),
            make_ref()
    end.

done_waiting(#waiter{from = From, timer = Timer}, Reply) ->
    cancel_timer(Timer),
    gen_server:reply(From, Reply).

%% Releases a lease (an unlock from From, or `none' for an expiry or the holder's death) and hands
%% the lock to the next waiter.
release(Id, Token, From, #state{mod = Mod, ref = Ref} = S) ->
    exec(Id, fun() -> Mod:lock_release(Ref, Id, Token) end,
         fun(Result, S1) ->
                 From =:= none orelse gen_server:reply(From, Result),
                 S2 = drop_lease(Id, Token, S1),
                 case Result of
                     ok -> wake(Id, S2);
                     _ -> S2
                 end
         end, S).

drop_lease(Id, Token, #state{leases = L, monitors = M} = S) ->
    case maps:find(Id, L) of
        {ok, #lease{token = T, mref = MRef, timer = TRef}} when Token =:= any; T =:= Token ->
            erlang:demonitor(MRef, [flush]),
            cancel_timer(TRef),
            S#state{leases = maps:remove(Id, L), monitors = maps:remove(MRef, M)};
        _ ->
            S
    end.

%% The lock on Id may be free: the first waiter tries (unless an attempt is already in flight).
wake(Id, #state{trying = T, waiters = Ws} = S) ->
    case maps:is_key(Id, T) orelse maps:find(Id, Ws) of
        {ok, Q0} ->
            {{value, W}, Q} = queue:out(Q0),
            S1 = case queue:is_empty(Q) of
                     true -> S#state{waiters = maps:remove(Id, Ws)};
                     false -> S#state{waiters = Ws#{Id => Q}}
                 end,
            attempt(Id, W, S1);
        _ ->
            S
    end.

enqueue(Id, W, Where, #state{waiters = Ws} = S) ->
    Q0 = maps:get(Id, Ws, queue:new()),
    Q = case Where of
            front -> queue:in_r(W, Q0);
            rear -> queue:in(W, Q0)
        end,
    S#state{waiters = Ws#{Id => Q}}.

wait_over(Id, Token, #state{waiters = Ws} = S) ->
    case maps:find(Id, Ws) of
        {ok, Q0} ->
            {Gone, Q} = lists:partition(fun(#waiter{token = T}) -> T =:= Token end, queue:to_list(Q0)),
            [gen_server:reply(From, timeout) || #waiter{from = From} <- Gone],
            case Q of
                [] -> S#state{waiters = maps:remove(Id, Ws)};
                _ -> S#state{waiters = Ws#{Id => queue:from_list(Q)}}
            end;
        error ->
            %% Already granted, or its attempt is in flight and will see the deadline.
            S
    end.

%% The lease on Id is held by someone else until Until (possibly on another node, or by a holder
%% whose node is gone): look again when it runs out.
retry_at(Id, Until, #state{retries = R} = S) ->
    case maps:find(Id, R) of
        {ok, {At, _}} when At =< Until ->
            S;
        Found ->
            case Found of
                {ok, {_, Old}} -> cancel_timer(Old);
                error -> ok
            end,
            Delay = min(?MAX_TIMER, max(0, Until - now_ms()) + 1),
            TRef = erlang:start_timer(Delay, self(), {lock_retry, Id}),
            S#state{retries = R#{Id => {Until, TRef}}}
    end.

%% Runs a store operation where the backend wants it and continues with its result: at once for
%% a serial backend, when the worker answers for a keyed one.
exec(_Id, Fun, Cont, #state{concurrency = serial} = S) ->
    Cont(erl_peb_worker:run(Fun), S);
exec(Id, Fun, Cont, #state{pending = P} = S) ->
    Tag = make_ref(),
    worker(Id, S) ! {exec, self(), Tag, Fun},
    S#state{pending = P#{Tag => Cont}}.

cancel_timer(undefined) -> ok;
cancel_timer(TRef) -> _ = erlang:cancel_timer(TRef, [{async, true}, {info, false}]), ok.

now_ms() ->
    erlang:system_time(millisecond).
