%% One pass over the session table removing the sessions that match a predicate: the expired ones
%% (the periodic sweep) or those idle longer than a limit (session_handler:gc/1).
%%
%% The pass runs in a process of its own and walks the table in bounded steps (a select with a
%% continuation, `sweep_batch' ids at a time), so neither the readers nor the server wait for it.
%% Each step's ids are deleted by the table's writer, and only if they still match: a session
%% renewed between the scan and the delete is kept. With a `serial' backend the writer is the
%% server, which takes the step as one more call between the others; with a `keyed' backend the
%% delete is a transaction run from here.
-module(erl_peb_sweeper).

-export([run/6]).

-spec run(Server :: pid() | atom(), module(), erl_peb_store:ref(), serial | keyed,
          erl_peb_store:predicate(), pos_integer()) -> non_neg_integer().
run(Server, Mod, Ref, Concurrency, Pred, Batch) ->
    step(Mod:scan(Ref, start, Pred, Batch), Server, Mod, Ref, Concurrency, Pred, Batch, 0).

step({Ids, Next}, Server, Mod, Ref, Concurrency, Pred, Batch, Removed) ->
    N = remove(Ids, Server, Mod, Ref, Concurrency, Pred),
    case Next of
        done -> Removed + N;
        _ -> step(Mod:scan(Ref, Next, Pred, Batch), Server, Mod, Ref, Concurrency, Pred, Batch, Removed + N)
    end.

remove([], _Server, _Mod, _Ref, _Concurrency, _Pred) ->
    0;
remove(Ids, Server, _Mod, _Ref, serial, Pred) ->
    gen_server:call(Server, {'$erl_peb_delete_matching', Ids, Pred}, infinity);
remove(Ids, _Server, Mod, Ref, keyed, Pred) ->
    case Mod:delete_matching(Ref, Ids, Pred) of
        N when is_integer(N) ->
            N;
        {error, Reason} ->
            %% Left for the next pass (e.g. no majority on this side of a partition).
            logger:warning("erl_peb: a sweep step could not delete ~b sessions: ~p", [length(Ids), Reason]),
            0
    end.
